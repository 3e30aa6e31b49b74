//! `taizhang backup` and `taizhang restore` of the embedded (SQLite) database and the photos on
//! disk; PostgreSQL is backed up with `pg_dump -Fc` (README, "Backup and restore").
//!
//! A backup is a directory: `taizhang.sqlite3` (a consistent copy made while the server runs),
//! `photos/` (the disk store's files) and `manifest.json` (when, which schema, counts, the key's
//! fingerprint). The secret key is never in it: whoever holds a backup and its key can read every
//! ID number, so the two travel apart. A restore checks the key it is given against the manifest
//! before it writes anything.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use serde::{Deserialize, Serialize};

use crate::db::schema;
use crate::db::{DatabaseUrl, DbConnection};
use crate::files;
use crate::photos::PhotoStoreConfig;
use crate::secrets::{self, Keys, SecretSource};
use crate::startup::{require_existing, stored_fingerprint};

pub const FORMAT: &str = "taizhang-backup/1";
pub const MANIFEST: &str = "manifest.json";
pub const DATABASE: &str = "taizhang.sqlite3";
pub const PHOTOS: &str = "photos";

/// What a backup holds, written last (a directory without it is an unfinished backup).
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    /// UTC, RFC 3339.
    pub created_at: String,
    pub taizhang_version: String,
    pub database: DatabaseInfo,
    /// Identifies the master secret the data is sealed and signed with; the key is not here.
    pub key_fingerprint: String,
    pub counts: Counts,
    pub audit_last_hash: Option<String>,
    pub photos: PhotosInfo,
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DatabaseInfo {
    pub backend: String,
    pub file: String,
    pub bytes: u64,
    pub migrations: usize,
    pub last_migration: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counts {
    pub users: i64,
    pub households: i64,
    pub household_surveys: i64,
    pub village_surveys: i64,
    pub checkins: i64,
    pub photos: i64,
    pub audit_log: i64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PhotosInfo {
    /// `disk` (copied into `photos/`) or `s3` (not copied).
    pub store: String,
    pub location: String,
    pub files: u64,
    pub bytes: u64,
}

/// Backs up the SQLite database at `database` and the photos of `store` into `to`, which must
/// not exist or be an empty directory.
pub fn backup(
    database: &DatabaseUrl,
    store: &PhotoStoreConfig,
    to: &Path,
) -> anyhow::Result<Manifest> {
    let DatabaseUrl::Sqlite(source) = database else {
        bail!(
            "`taizhang backup` copies the embedded SQLite database; back up PostgreSQL with \
             `pg_dump -Fc` (README, \"Backup and restore\")"
        );
    };
    require_existing(database)?;
    // Everything written from here on is private to this user (umask 077).
    files::restrict_new_files();
    prepare_empty_dir(to, "the backup target")?;
    let copy = to.join(DATABASE);
    snapshot(source, &copy)?;

    // The photos are copied after the database snapshot: a submission can name a photo only
    // once it is stored, and stored photos are never removed, so every photo the snapshot names
    // is already on disk when the copy starts.
    let mut notes = vec![
        "The secret key is not in this backup: keep it apart (restore needs it, and checks it \
         against key_fingerprint)."
            .to_owned(),
    ];
    let photos = match store {
        PhotoStoreConfig::Disk(dir) => {
            let (files, bytes) = copy_tree(dir, &to.join(PHOTOS))?;
            PhotosInfo {
                store: "disk".into(),
                location: PHOTOS.into(),
                files,
                bytes,
            }
        }
        PhotoStoreConfig::S3 { .. } => {
            notes.push(
                "Photos are in the S3 bucket named in photos.location, not in this backup: back \
                 the bucket up by the store's own means (versioning, replication, a bucket copy)."
                    .to_owned(),
            );
            PhotosInfo {
                store: "s3".into(),
                location: store.describe(),
                files: 0,
                bytes: 0,
            }
        }
    };
    let (key_fingerprint, counts, audit_last_hash, migrations, last_migration) =
        describe_copy(&copy)?;
    let manifest = Manifest {
        format: FORMAT.into(),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        taizhang_version: env!("CARGO_PKG_VERSION").into(),
        database: DatabaseInfo {
            backend: "sqlite".into(),
            file: DATABASE.into(),
            bytes: fs::metadata(&copy)?.len(),
            migrations,
            last_migration,
        },
        key_fingerprint,
        counts,
        audit_last_hash,
        photos,
        notes,
    };
    write_file_synced(
        &to.join(MANIFEST),
        serde_json::to_string_pretty(&manifest)?.as_bytes(),
    )?;
    sync_dir(to);
    Ok(manifest)
}

/// Copies the database as one consistent snapshot while the server keeps writing.
///
/// `VACUUM INTO` rather than the online backup API: it reads the whole database inside one read
/// transaction, which in WAL mode sees a single committed state and never blocks the server's
/// writers, and it is plain SQL on our own connection. The backup API (`sqlite3_backup_step`)
/// needs the raw handle through `unsafe`, and done in steps it starts over whenever another
/// connection writes, so under a steady stream of submissions it may never finish. SQLite does
/// not fsync the file `VACUUM INTO` writes, so it is synced here.
fn snapshot(source: &Path, copy: &Path) -> anyhow::Result<()> {
    let mut conn = DatabaseUrl::Sqlite(source.to_path_buf())
        .establish()
        .with_context(|| format!("opening {}", source.display()))?;
    let DbConnection::Sqlite(conn) = &mut conn else {
        bail!("not a SQLite connection");
    };
    let target = copy
        .to_str()
        .with_context(|| format!("the path {} is not UTF-8", copy.display()))?;
    diesel::sql_query("VACUUM INTO ?")
        .bind::<diesel::sql_types::Text, _>(target)
        .execute(conn)
        .with_context(|| format!("copying {} into {}", source.display(), copy.display()))?;
    files::make_private(copy);
    fs::File::open(copy)?.sync_all()?;
    Ok(())
}

type Description = (String, Counts, Option<String>, usize, Option<String>);

/// The key fingerprint, counts, last audit hash and migrations of a backup's database file.
/// Opened without the server's pragmas, so reading it changes nothing (no switch to WAL).
fn describe_copy(copy: &Path) -> anyhow::Result<Description> {
    let raw = SqliteConnection::establish(&copy.to_string_lossy())
        .with_context(|| format!("opening {}", copy.display()))?;
    let mut conn = DbConnection::Sqlite(raw);
    let Some(fingerprint) = stored_fingerprint(&mut conn)? else {
        bail!("{} holds no key fingerprint", copy.display());
    };
    let counts = count(&mut conn)?;
    let last_hash: Option<String> = schema::audit_log::table
        .order(schema::audit_log::seq.desc())
        .select(schema::audit_log::hash)
        .first(&mut conn)
        .optional()?;
    #[derive(QueryableByName)]
    struct Version {
        #[diesel(sql_type = diesel::sql_types::Text)]
        version: String,
    }
    let mut versions: Vec<String> =
        diesel::sql_query("SELECT version FROM __diesel_schema_migrations")
            .load::<Version>(&mut conn)?
            .into_iter()
            .map(|v| v.version)
            .collect();
    versions.sort();
    Ok((
        fingerprint,
        counts,
        last_hash,
        versions.len(),
        versions.pop(),
    ))
}

fn count(conn: &mut DbConnection) -> anyhow::Result<Counts> {
    use schema::*;
    Ok(Counts {
        users: users::table.count().get_result(conn)?,
        households: households::table.count().get_result(conn)?,
        household_surveys: household_surveys::table.count().get_result(conn)?,
        village_surveys: village_surveys::table.count().get_result(conn)?,
        checkins: checkins::table.count().get_result(conn)?,
        photos: photos::table.count().get_result(conn)?,
        audit_log: audit_log::table.count().get_result(conn)?,
    })
}

/// Where and how to restore.
pub struct RestoreTarget<'a> {
    pub data_dir: &'a Path,
    pub database: &'a DatabaseUrl,
    pub store: &'a PhotoStoreConfig,
    pub secret: &'a SecretSource,
    /// Write the key into `DATA_DIR/secret.key`, where the embedded mode reads it.
    pub write_key_file: bool,
}

/// Restores the backup at `from` into an empty data directory. Every check (the manifest, the
/// key against its fingerprint, empty targets, the copy's audit chain) comes before the first
/// write, so a refused restore leaves nothing behind.
pub fn restore(from: &Path, target: &RestoreTarget<'_>) -> anyhow::Result<Manifest> {
    let manifest = read_manifest(from)?;
    let master = secrets::read_given(target.secret).with_context(|| {
        format!(
            "give the key this backup was made with (fingerprint {}) in TAIZHANG_SECRET_KEY or \
             --secret-key-file; the backup does not hold it",
            manifest.key_fingerprint
        )
    })?;
    let keys = Keys::from_master(&master);
    if keys.fingerprint() != manifest.key_fingerprint {
        bail!(
            "the secret key given (fingerprint {}) is not the one this backup was made with \
             (fingerprint {}); nothing was written",
            keys.fingerprint(),
            manifest.key_fingerprint
        );
    }
    let DatabaseUrl::Sqlite(database) = target.database else {
        bail!(
            "`taizhang restore` restores the embedded SQLite database; restore PostgreSQL with \
             `pg_restore` (README, \"Backup and restore\")"
        );
    };
    let copy = from.join(&manifest.database.file);
    check_copy(&copy, &manifest)?;
    check_empty_or_absent(target.data_dir, "the data directory")?;
    if database.exists() {
        bail!("{} exists: restore into a new database", database.display());
    }
    let photo_dir = match (manifest.photos.store.as_str(), target.store) {
        ("disk", PhotoStoreConfig::Disk(dir)) => {
            check_empty_or_absent(dir, "the photo directory")?;
            Some(dir)
        }
        ("disk", PhotoStoreConfig::S3 { .. }) => bail!(
            "this backup's photos are files (in {}): restore into a photo directory, then copy \
             them into the bucket if the server is to use one",
            from.join(PHOTOS).display()
        ),
        _ => None,
    };

    files::restrict_new_files();
    prepare_empty_dir(target.data_dir, "the data directory")?;
    if let Some(parent) = database.parent() {
        files::create_private_dir(parent)?;
    }
    // Copied under a temporary name and renamed, so an interrupted restore leaves no database
    // a server would start on.
    let mut partial = database.clone().into_os_string();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    copy_file(&copy, &partial)?;
    fs::rename(&partial, database)?;
    if let Some(dir) = photo_dir {
        copy_tree(&from.join(PHOTOS), dir)?;
    }
    if target.write_key_file {
        secrets::write_key_file(&target.data_dir.join("secret.key"), &master)?;
    }
    sync_dir(target.data_dir);
    Ok(manifest)
}

pub fn read_manifest(from: &Path) -> anyhow::Result<Manifest> {
    let path = from.join(MANIFEST);
    let text = fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (a backup made by `taizhang backup`; without its manifest it is \
             unfinished)",
            path.display()
        )
    })?;
    let manifest: Manifest =
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    if manifest.format != FORMAT {
        bail!(
            "{} is of format {}, not {FORMAT}",
            path.display(),
            manifest.format
        );
    }
    if manifest.database.file.contains(['/', '\\']) || manifest.database.file.starts_with('.') {
        bail!("{}: database.file must be a file name", path.display());
    }
    Ok(manifest)
}

/// The backup's database must be the one the manifest describes, with an intact audit chain.
fn check_copy(copy: &Path, manifest: &Manifest) -> anyhow::Result<()> {
    if !copy.is_file() {
        bail!("{} is missing from the backup", copy.display());
    }
    let raw = SqliteConnection::establish(&copy.to_string_lossy())
        .with_context(|| format!("opening {}", copy.display()))?;
    let mut conn = DbConnection::Sqlite(raw);
    let fingerprint = stored_fingerprint(&mut conn)?;
    if fingerprint.as_deref() != Some(manifest.key_fingerprint.as_str()) {
        bail!(
            "{} was not made with the key of the manifest's fingerprint",
            copy.display()
        );
    }
    let entries = crate::audit::verify(&mut conn)
        .with_context(|| format!("the audit chain of {}", copy.display()))?;
    if i64::try_from(entries).ok() != Some(manifest.counts.audit_log) {
        bail!(
            "{} holds {entries} audit entries, the manifest {}",
            copy.display(),
            manifest.counts.audit_log
        );
    }
    Ok(())
}

fn check_empty_or_absent(dir: &Path, what: &str) -> anyhow::Result<()> {
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!("{what} {} is not empty", dir.display());
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("{what} {}", dir.display())),
    }
}

/// Creates `dir` (0700), or takes an existing empty one and narrows it to 0700.
fn prepare_empty_dir(dir: &Path, what: &str) -> anyhow::Result<()> {
    check_empty_or_absent(dir, what)?;
    files::create_private_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    set_mode(dir, 0o700)?;
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .with_context(|| format!("chmod {}", path.display()))?;
    }
    let _ = (path, mode);
    Ok(())
}

/// Copies the files under `from` into `to` (directories 0700, files 0600); returns the files and
/// bytes copied. The object store writes each photo under a temporary name with `#` and renames
/// it: those half-written files are left out.
fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<(u64, u64)> {
    files::create_private_dir(to).with_context(|| format!("creating {}", to.display()))?;
    set_mode(to, 0o700)?;
    let entries = match fs::read_dir(from) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(e).with_context(|| format!("reading {}", from.display())),
    };
    let (mut files, mut bytes) = (0, 0);
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let kind = entry.file_type()?;
        let (source, target) = (entry.path(), to.join(&name));
        if kind.is_dir() {
            let (f, b) = copy_tree(&source, &target)?;
            files += f;
            bytes += b;
        } else if kind.is_file() && !name.to_string_lossy().contains('#') {
            bytes += copy_file(&source, &target)?;
            files += 1;
        }
    }
    Ok((files, bytes))
}

fn copy_file(from: &Path, to: &Path) -> anyhow::Result<u64> {
    let mut source = fs::File::open(from).with_context(|| format!("reading {}", from.display()))?;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut target = options
        .open(to)
        .with_context(|| format!("creating {}", to.display()))?;
    let n = std::io::copy(&mut source, &mut target)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    target.sync_all()?;
    Ok(n)
}

fn write_file_synced(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// Makes the directory's entries durable (best effort: not every platform can sync one).
fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
