//! A real `taizhang serve` child process, for the tests that need the binary itself (several
//! processes on one database, SIGKILL) and for the end-to-end benches.

use std::ffi::OsStr;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The `taizhang` binary: `TAIZHANG_BIN`, or the one cargo built beside the running test or
/// bench (`target/<profile>/taizhang`, the file `CARGO_BIN_EXE_taizhang` names; a test or bench
/// runs from `target/<profile>/deps/`).
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TAIZHANG_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the running test's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps");
    profile_dir.join(format!("taizhang{}", std::env::consts::EXE_SUFFIX))
}

/// A running server, killed and reaped when dropped.
pub struct Spawned {
    /// `http://host:port`, as the server announced it.
    pub address: String,
    pub child: Child,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `taizhang serve --demo` with only the environment given (demo users, no generated
/// demo surveys: tests and the bench bring their own data) and waits for it to serve.
pub fn spawn(
    database_url: &str,
    data_dir: &Path,
    bind: &str,
    secret: &str,
    env: &[(&str, &OsStr)],
) -> std::io::Result<Spawned> {
    let mut child = Command::new(binary())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TAIZHANG_DATA_DIR", data_dir)
        .env("TAIZHANG_DATABASE_URL", database_url)
        .env("TAIZHANG_SECRET_KEY", secret)
        .env("TAIZHANG_BIND", bind)
        .env("TAIZHANG_DEMO_HOUSEHOLDS", "0")
        // Its warnings and errors go to the test's stderr, which the runner shows when the
        // test fails: a 500 from a child process otherwise leaves no trace of why.
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .args(["serve", "--demo"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let address = child.stdout.take().and_then(|stdout| {
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| {
                line.strip_prefix("Taizhang is serving on ")
                    .and_then(|r| r.split_whitespace().next())
                    .map(str::to_owned)
            })
    });
    let spawned = Spawned {
        address: address.unwrap_or_default(),
        child,
    };
    if spawned.address.is_empty() {
        // Dropping it kills what did start.
        return Err(std::io::Error::other(
            "the server exited without announcing its address",
        ));
    }
    Ok(spawned)
}
