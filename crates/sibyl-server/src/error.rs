//! Errors a request can end with, in Cassandra's classes; mapped to protocol error bodies at the edge.

use bytes::Bytes;
use sibyl_protocol::error_code;
use sibyl_protocol::messages::{ErrorBody, ErrorDetails};

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    Syntax(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Config(String),
    #[error("{message}")]
    AlreadyExists {
        keyspace: String,
        table: String,
        message: String,
    },
    #[error("Prepared query with ID {0:?} not found")]
    Unprepared(Bytes),
    #[error("{0}")]
    Protocol(String),
    #[error("{0}")]
    Server(String),
    #[error("{0}")]
    Truncate(String),
    /// A function or operator failed while executing (Cassandra's FunctionExecutionException
    /// and OperationExecutionException, error FUNCTION_FAILURE).
    #[error("{message}")]
    FunctionFailure {
        keyspace: String,
        function: String,
        arg_types: Vec<String>,
        message: String,
    },
    #[error("{0}")]
    Unauthorized(String),
    #[error("Cannot achieve consistency level {}", sibyl_protocol::consistency::name(*consistency))]
    Unavailable {
        consistency: u16,
        required: i32,
        alive: i32,
    },
    #[error("Operation timed out - received only {received} responses.")]
    WriteTimeout {
        consistency: u16,
        received: i32,
        block_for: i32,
        write_type: String,
    },
    #[error("Operation timed out - received only {received} responses.")]
    ReadTimeout {
        consistency: u16,
        received: i32,
        block_for: i32,
        data_present: bool,
    },
}

pub type QueryResult<T> = Result<T, QueryError>;

pub fn invalid<T>(msg: impl Into<String>) -> QueryResult<T> {
    Err(QueryError::Invalid(msg.into()))
}

impl From<sibyl_storage::StorageError> for QueryError {
    fn from(e: sibyl_storage::StorageError) -> Self {
        QueryError::Server(format!("storage error: {e}"))
    }
}

impl From<sibyl_types::TypeError> for QueryError {
    fn from(e: sibyl_types::TypeError) -> Self {
        QueryError::Invalid(e.to_string())
    }
}

impl From<sibyl_cql::ParseError> for QueryError {
    fn from(e: sibyl_cql::ParseError) -> Self {
        QueryError::Syntax(e.message)
    }
}

impl QueryError {
    pub fn to_error_body(&self) -> ErrorBody {
        let message = self.to_string();
        let (code, details) = match self {
            QueryError::Syntax(_) => (error_code::SYNTAX_ERROR, ErrorDetails::None),
            QueryError::Invalid(_) => (error_code::INVALID, ErrorDetails::None),
            QueryError::Config(_) => (error_code::CONFIG_ERROR, ErrorDetails::None),
            QueryError::AlreadyExists {
                keyspace, table, ..
            } => (
                error_code::ALREADY_EXISTS,
                ErrorDetails::AlreadyExists {
                    keyspace: keyspace.clone(),
                    table: table.clone(),
                },
            ),
            QueryError::Unprepared(id) => (
                error_code::UNPREPARED,
                ErrorDetails::Unprepared { id: id.clone() },
            ),
            QueryError::Protocol(_) => (error_code::PROTOCOL_ERROR, ErrorDetails::None),
            QueryError::Server(_) => (error_code::SERVER_ERROR, ErrorDetails::None),
            QueryError::Truncate(_) => (error_code::TRUNCATE_ERROR, ErrorDetails::None),
            QueryError::FunctionFailure {
                keyspace,
                function,
                arg_types,
                ..
            } => (
                error_code::FUNCTION_FAILURE,
                ErrorDetails::FunctionFailure {
                    keyspace: keyspace.clone(),
                    function: function.clone(),
                    arg_types: arg_types.clone(),
                },
            ),
            QueryError::Unauthorized(_) => (error_code::UNAUTHORIZED, ErrorDetails::None),
            QueryError::Unavailable {
                consistency,
                required,
                alive,
            } => (
                error_code::UNAVAILABLE,
                ErrorDetails::Unavailable {
                    consistency: *consistency,
                    required: *required,
                    alive: *alive,
                },
            ),
            QueryError::WriteTimeout {
                consistency,
                received,
                block_for,
                write_type,
            } => (
                error_code::WRITE_TIMEOUT,
                ErrorDetails::WriteTimeout {
                    consistency: *consistency,
                    received: *received,
                    block_for: *block_for,
                    write_type: write_type.clone(),
                    contentions: None,
                },
            ),
            QueryError::ReadTimeout {
                consistency,
                received,
                block_for,
                data_present,
            } => (
                error_code::READ_TIMEOUT,
                ErrorDetails::ReadTimeout {
                    consistency: *consistency,
                    received: *received,
                    block_for: *block_for,
                    data_present: *data_present,
                },
            ),
        };
        ErrorBody {
            code,
            message,
            details,
        }
    }
}

/// A failed arithmetic operator, as Cassandra reports it: the operators are the system
/// functions `_divide` and `_modulo`, and the message names the operand types.
pub fn operation_failed(op: char, left: &str, right: &str, cause: &str) -> QueryError {
    let function = match op {
        '/' => "_divide",
        '%' => "_modulo",
        '*' => "_multiply",
        '-' => "_substract",
        _ => "_add",
    };
    QueryError::FunctionFailure {
        keyspace: "system".into(),
        function: function.into(),
        arg_types: vec![left.to_string(), right.to_string()],
        message: format!("the operation '{left} {op} {right}' failed: {cause}"),
    }
}
