//! The marketplace's domain: types, rules and maths. No I/O here: everything is a pure function
//! of its inputs, so it is tested without servers and shared by the web, API and workers.

pub mod analytics;
pub mod i18n;
pub mod money;
pub mod orders;
pub mod phone;
pub mod product;
#[cfg(test)]
mod proptests;
pub mod quality;
pub mod quota;
pub mod recommend;
pub mod states;
pub mod text;
pub mod whatsapp;

use serde::Serialize;

/// A rejected input, naming the field the person has to fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        FieldError {
            field,
            message: message.into(),
        }
    }
}

/// Several rejected fields at once, so a form can show every problem in one round trip.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    pub fn check<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(e);
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.as_str())
    }
}
