//! Converters and transforms.

mod converter_roundtrip;
mod json_converter;
mod transform_chain;
