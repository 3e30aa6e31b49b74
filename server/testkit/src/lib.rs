//! The test kit of Taizhang, shared by the integration tests and the benches: a throwaway
//! PostgreSQL cluster (`pg`), S3-compatible servers (`moto` for the tests, `s3s` for the soak), the real server in-process or as
//! a child process (`app`, `process`), and a client that checks every exchange against the
//! OpenAPI document (`conformance`), and what the benches share (`bench`).

pub mod app;
pub mod bench;
pub mod conformance;
pub mod moto;
pub mod pg;
pub mod process;
pub mod s3s;

/// The repository root, where `fixtures/` and `mobile-api-spec/` are.
pub const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The SQL diesel sends for `query` on backend `DB`, with placeholders for its binds: for
/// `EXPLAIN`ing a query the server runs, its values bound in the order of its arguments.
pub fn sql_of<DB, Q>(query: &Q) -> String
where
    DB: diesel::backend::Backend + Default,
    DB::QueryBuilder: Default,
    Q: diesel::query_builder::QueryFragment<DB>,
{
    use diesel::query_builder::QueryBuilder;
    let mut builder = DB::QueryBuilder::default();
    query
        .to_sql(&mut builder, &DB::default())
        .expect("a diesel query renders");
    builder.finish()
}
