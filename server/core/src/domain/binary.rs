//! The OpenAPI schema of a raw byte body, here so that handlers in `api/` can name it without
//! depending on the document (`openapi`) that is built from them.

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type};
use utoipa::openapi::RefOr;

/// A body of raw bytes (a JPEG, a spreadsheet): `type: string` with `format: binary`, which
/// generators map to a file or byte stream (utoipa would describe `Vec<u8>` as an array of
/// integers).
pub struct Binary;

impl utoipa::PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::String))
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl utoipa::ToSchema for Binary {}
