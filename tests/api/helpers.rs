//! The test kit's server and client helpers, and the macros that declare a test once per
//! database and photo store.

pub use taizhang_testkit::app::*;

/// Declares each listed test twice: once on SQLite, once on PostgreSQL.
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )+
        }
        mod postgres {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            )+
        }
    };
}
pub(crate) use both_backends;

/// Declares each listed test four times: SQLite and PostgreSQL, each with photos on disk and
/// in S3-compatible storage.
macro_rules! every_backend_and_store {
    ($($name:ident),+ $(,)?) => {
        mod sqlite_disk {
            $( #[actix_web::test] async fn $name() { super::$name($crate::helpers::Backend::Sqlite, $crate::helpers::Store::Disk).await } )+
        }
        mod postgres_disk {
            $( #[actix_web::test] async fn $name() { super::$name($crate::helpers::Backend::Postgres, $crate::helpers::Store::Disk).await } )+
        }
        mod sqlite_s3 {
            $( #[actix_web::test] async fn $name() { super::$name($crate::helpers::Backend::Sqlite, $crate::helpers::Store::S3).await } )+
        }
        mod postgres_s3 {
            $( #[actix_web::test] async fn $name() { super::$name($crate::helpers::Backend::Postgres, $crate::helpers::Store::S3).await } )+
        }
    };
}
pub(crate) use every_backend_and_store;
