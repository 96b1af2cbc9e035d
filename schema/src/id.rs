//! Event ids: 128 bits, the top 48 the arrival time in milliseconds, the rest
//! a counter, so that ids sort by arrival and never repeat within a data
//! directory (the generator is advanced past every id already stored).

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const TEXT_LEN: usize = 26;
const COUNTER_BITS: u32 = 80;

/// A unique event id, sortable by arrival; printed as 26 Crockford base32
/// characters (`01JD...`), like a ULID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(u128);

impl EventId {
    pub const fn from_u128(value: u128) -> EventId {
        EventId(value)
    }

    pub const fn as_u128(self) -> u128 {
        self.0
    }

    /// The arrival time encoded in the id, in milliseconds since the epoch.
    pub const fn arrival_millis(self) -> u64 {
        (self.0 >> COUNTER_BITS) as u64
    }

    /// The arrival time encoded in the id (to the millisecond): the event's
    /// `event.ingested`.
    pub fn arrival(self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_millis(self.arrival_millis() as i64).unwrap_or_default()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = [0u8; TEXT_LEN];
        let mut value = self.0;
        for slot in text.iter_mut().rev() {
            *slot = CROCKFORD[(value & 31) as usize];
            value >>= 5;
        }
        // Every byte comes from the ASCII alphabet above.
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

/// The error for a string that is not an event id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid event id {text:?}: expected 26 Crockford base32 characters")]
pub struct ParseEventIdError {
    text: String,
}

impl FromStr for EventId {
    type Err = ParseEventIdError;

    fn from_str(text: &str) -> Result<EventId, ParseEventIdError> {
        let invalid = || ParseEventIdError { text: text.chars().take(64).collect() };
        if text.len() != TEXT_LEN {
            return Err(invalid());
        }
        let mut value: u128 = 0;
        for (position, byte) in text.bytes().enumerate() {
            let digit =
                CROCKFORD.iter().position(|&c| c == byte.to_ascii_uppercase()).ok_or_else(invalid)? as u128;
            // The first character carries only 3 bits of a 128-bit value.
            if position == 0 && digit > 7 {
                return Err(invalid());
            }
            value = (value << 5) | digit;
        }
        Ok(EventId(value))
    }
}

impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<EventId, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Makes strictly increasing [`EventId`]s.
#[derive(Debug, Default)]
pub struct EventIdGenerator {
    last: Mutex<u128>,
}

impl EventIdGenerator {
    pub fn new() -> EventIdGenerator {
        EventIdGenerator::default()
    }

    /// The next id: the current time's, or one past the last, whichever is larger.
    pub fn next(&self) -> EventId {
        let now_millis = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        let floor = (now_millis & ((1u128 << 48) - 1)) << COUNTER_BITS;
        let mut last = self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *last = (*last + 1).max(floor);
        EventId(*last)
    }

    /// Makes sure every later id is greater than `seen` (used after a restart,
    /// with the largest id already stored, in case the clock went back).
    pub fn advance_past(&self, seen: EventId) {
        let mut last = self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *last = (*last).max(seen.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_and_round_trip_through_text() {
        let ids = EventIdGenerator::new();
        let mut previous = ids.next();
        for _ in 0..1000 {
            let id = ids.next();
            assert!(id > previous);
            let text = id.to_string();
            assert_eq!(text.len(), 26);
            assert_eq!(text.parse::<EventId>().unwrap(), id);
            assert!(text > previous.to_string(), "text order follows id order");
            previous = id;
        }
    }

    #[test]
    fn advance_past_moves_the_floor() {
        let ids = EventIdGenerator::new();
        let far = EventId::from_u128(u128::MAX >> 1);
        ids.advance_past(far);
        assert!(ids.next() > far);
    }

    #[test]
    fn bad_ids_are_refused_with_the_text() {
        assert!("short".parse::<EventId>().is_err());
        assert!("8ZZZZZZZZZZZZZZZZZZZZZZZZZ".parse::<EventId>().is_err());
        assert!("0000000000000000000000000U".parse::<EventId>().unwrap_err().to_string().contains("000U"));
    }
}
