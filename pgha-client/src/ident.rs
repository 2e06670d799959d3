//! SQL identifiers built from user input, always validated and quoted.

use std::fmt;

use crate::error::{Error, Result};

/// A validated SQL identifier, possibly schema-qualified (`schema.name`), printed quoted
/// (`"schema"."name"`) so that user input can never change the statement it is put in.
///
/// ```
/// use pgha_client::Ident;
/// assert_eq!(Ident::parse("public.items")?.to_string(), r#""public"."items""#);
/// assert_eq!(Ident::parse(r#"x"; DROP TABLE t; --"#)?.to_string(), r#""x""; DROP TABLE t; --""#);
/// assert!(Ident::parse("").is_err());
/// # Ok::<(), pgha_client::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ident {
    parts: Vec<String>,
}

impl Ident {
    /// Parses `name` or `schema.name` (split on the first dot). Each part must be 1–63 bytes
    /// without NUL; any other character is allowed and quoted.
    pub fn parse(s: &str) -> Result<Self> {
        let parts: Vec<&str> = match s.split_once('.') {
            Some((schema, name)) if !schema.contains('"') && !name.contains('"') => vec![schema, name],
            _ => vec![s],
        };
        for part in &parts {
            if part.is_empty() || part.len() > 63 || part.contains('\0') {
                return Err(Error::config(format!(
                    "invalid SQL identifier {:?}: each part must be 1-63 bytes without NUL",
                    s.chars().take(80).collect::<String>()
                )));
            }
        }
        Ok(Self {
            parts: parts.into_iter().map(str::to_owned).collect(),
        })
    }

    /// The last part (the object's own name), unquoted.
    pub fn name(&self) -> &str {
        self.parts.last().map_or("", String::as_str)
    }

    /// A derived identifier in the same schema: `<name><suffix>` (truncated to 63 bytes).
    pub fn with_suffix(&self, suffix: &str) -> Self {
        let mut parts = self.parts.clone();
        if let Some(last) = parts.last_mut() {
            let mut name = format!("{last}{suffix}");
            while name.len() > 63 {
                name.remove(name.len() - suffix.len() - 1);
            }
            *last = name;
        }
        Self { parts }
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "\"{}\"", part.replace('"', "\"\""))?;
        }
        Ok(())
    }
}
