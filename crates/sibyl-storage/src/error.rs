use crate::model::TableId;

/// Errors returned by the storage engine.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt data: {0}")]
    Corrupt(String),
    #[error("unknown table {0}")]
    UnknownTable(TableId),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("engine is shut down")]
    Shutdown,
}

pub type Result<T> = std::result::Result<T, StorageError>;
