//! Reading result rows without panicking: a column of an unexpected type (another PostgreSQL
//! version, an extension's changed view) is a typed error, not a crash.

use tokio_postgres::types::FromSql;
use tokio_postgres::Row;

use crate::error::{Error, Result};

/// `Row::try_get` with a [protocol](crate::ErrorKind::Protocol) error naming the column.
pub(crate) trait RowExt {
    /// Column `i` as `T`.
    fn col<'a, T: FromSql<'a>>(&'a self, i: usize) -> Result<T>;
}

impl RowExt for Row {
    fn col<'a, T: FromSql<'a>>(&'a self, i: usize) -> Result<T> {
        self.try_get(i).map_err(|e| {
            let name = self.columns().get(i).map_or("?", |c| c.name());
            Error::protocol(format!("column {i} ({name}) of an unexpected type")).with_source(e)
        })
    }
}
