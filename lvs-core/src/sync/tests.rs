//! Tests of the sync room.
