//! The only place the origin reads the wall clock (`clippy.toml` forbids it elsewhere), so
//! every other module takes the time as a value and tests can reason about it.

/// The current time in Unix seconds.
#[allow(clippy::disallowed_methods)]
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The current time in Unix milliseconds.
#[allow(clippy::disallowed_methods)]
pub fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn seconds_and_milliseconds_tell_the_same_time() {
        let (s, ms) = (super::now(), super::now_ms());
        assert!(s > 1_700_000_000, "a time after 2023: {s}");
        assert!((ms / 1000 - s).abs() <= 1, "{ms} ms vs {s} s");
    }
}
