//! Files the server writes hold personal data and keys (the SQLite database and its journal, the
//! generated secret key, photos): nobody else on the machine may read them.

use std::path::Path;

/// Makes every file and directory this process creates from now on private to its user
/// (umask 077), including those SQLite and the photo store create themselves.
pub fn restrict_new_files() {
    #[cfg(unix)]
    // SAFETY: umask only sets the process's file-mode creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// Creates a directory (and its parents) readable by this user only.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Takes group and others' access away from an existing file or directory (one made by an
/// earlier version, before modes were restricted). Missing paths are fine; a path this user
/// cannot change is logged, not fatal: the operator may have set its mode on purpose.
pub fn make_private(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 == 0 {
            return;
        }
        let private = std::fs::Permissions::from_mode(mode & 0o700);
        match std::fs::set_permissions(path, private) {
            Ok(()) => tracing::info!(
                path = %path.display(),
                from = format!("{:o}", mode & 0o777),
                to = format!("{:o}", mode & 0o700),
                "made private"
            ),
            Err(error) => tracing::warn!(
                path = %path.display(),
                %error,
                "cannot take group and others' access away"
            ),
        }
    }
}

/// Creates an empty file readable by this user only, unless it exists.
pub fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("exists")
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn directories_and_files_are_made_private() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("a/b");
        create_private_dir(&dir).expect("created");
        assert_eq!(mode(&dir), 0o700);
        let file = dir.join("db");
        create_private_file(&file).expect("created");
        assert_eq!(mode(&file), 0o600);
        create_private_file(&file).expect("an existing file is fine");

        let old = root.path().join("old");
        std::fs::write(&old, b"x").expect("written");
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        make_private(&old);
        assert_eq!(mode(&old), 0o600);
        make_private(&root.path().join("missing"));
    }
}
