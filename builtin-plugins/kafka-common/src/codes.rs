//! Kafka protocol error codes: their names (for messages a user can search)
//! and whether a retry after a metadata refresh can succeed.

/// (code, name, retriable)
const CODES: &[(i16, &str, bool)] = &[
    (-1, "UNKNOWN_SERVER_ERROR", false),
    (1, "OFFSET_OUT_OF_RANGE", false),
    (2, "CORRUPT_MESSAGE", true),
    (3, "UNKNOWN_TOPIC_OR_PARTITION", true),
    (5, "LEADER_NOT_AVAILABLE", true),
    (6, "NOT_LEADER_OR_FOLLOWER", true),
    (7, "REQUEST_TIMED_OUT", true),
    (8, "BROKER_NOT_AVAILABLE", true),
    (9, "REPLICA_NOT_AVAILABLE", true),
    (10, "MESSAGE_TOO_LARGE", false),
    (13, "NETWORK_EXCEPTION", true),
    (14, "COORDINATOR_LOAD_IN_PROGRESS", true),
    (15, "COORDINATOR_NOT_AVAILABLE", true),
    (16, "NOT_COORDINATOR", true),
    (17, "INVALID_TOPIC_EXCEPTION", false),
    (18, "RECORD_LIST_TOO_LARGE", false),
    (19, "NOT_ENOUGH_REPLICAS", true),
    (20, "NOT_ENOUGH_REPLICAS_AFTER_APPEND", true),
    (21, "INVALID_REQUIRED_ACKS", false),
    (22, "ILLEGAL_GENERATION", false),
    (25, "UNKNOWN_MEMBER_ID", false),
    (27, "REBALANCE_IN_PROGRESS", true),
    (29, "TOPIC_AUTHORIZATION_FAILED", false),
    (30, "GROUP_AUTHORIZATION_FAILED", false),
    (31, "CLUSTER_AUTHORIZATION_FAILED", false),
    (35, "UNSUPPORTED_VERSION", false),
    (43, "UNSUPPORTED_FOR_MESSAGE_FORMAT", false),
    (56, "KAFKA_STORAGE_ERROR", true),
    (74, "FENCED_LEADER_EPOCH", true),
    (75, "UNKNOWN_LEADER_EPOCH", true),
    (76, "UNSUPPORTED_COMPRESSION_TYPE", false),
    (79, "MEMBER_ID_REQUIRED", true),
    (87, "INVALID_RECORD", false),
];

/// The protocol name of an error code (`UNKNOWN` for one not listed).
pub fn code_name(code: i16) -> &'static str {
    CODES
        .iter()
        .find(|c| c.0 == code)
        .map(|c| c.1)
        .unwrap_or("UNKNOWN")
}

/// True when the error can go away by itself (a leader moving, a broker
/// starting): worth a metadata refresh and another try.
pub fn retriable(code: i16) -> bool {
    CODES.iter().find(|c| c.0 == code).is_some_and(|c| c.2)
}

/// True for the codes that say the request went to the wrong broker.
pub fn stale_leader(code: i16) -> bool {
    matches!(code, 3 | 5 | 6 | 74 | 75)
}
