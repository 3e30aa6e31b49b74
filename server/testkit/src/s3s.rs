//! An S3-compatible server that keeps objects as files: `s3s-fs` (`cargo install s3s-fs
//! --features binary`), for runs that store more photos than memory holds or than moto can keep
//! open (moto spools each object to an open file, and the descriptor limit here is 20 000): the
//! soak. Stopped when dropped.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct S3sFs {
    pub endpoint: String,
    child: Child,
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3sFs {
    /// Serves `root` (a bucket is a directory under it: `buckets` are made here) with the
    /// credentials given.
    pub fn start(
        root: &Path,
        buckets: &[&str],
        access_key: &str,
        secret_key: &str,
    ) -> std::io::Result<S3sFs> {
        for bucket in buckets {
            std::fs::create_dir_all(root.join(bucket))?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new("s3s-fs")
            .arg("--host")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(port.to_string())
            .arg("--access-key")
            .arg(access_key)
            .arg("--secret-key")
            .arg(secret_key)
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                std::io::Error::other(format!(
                    "s3s-fs ({e}): install it with `cargo install s3s-fs --features binary`"
                ))
            })?;
        let server = S3sFs {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(30) {
                return Err(std::io::Error::other("s3s-fs did not start"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }
}
