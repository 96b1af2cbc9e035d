//! Syslog messages, RFC 5424 and RFC 3164, parsed with nom.

use chrono::{DateTime, Datelike, NaiveDateTime, TimeZone, Utc};
use nom::branch::alt;
use nom::bytes::complete::{tag, take_while, take_while_m_n, take_while1};
use nom::character::complete::{char, digit1};
use nom::combinator::{map_res, opt};
use nom::multi::many0;
use nom::sequence::{delimited, preceded};
use nom::{IResult, Parser};

/// RFC 5424 structured data: (SD-ID, [(name, value)]) per element.
pub type StructuredData = Vec<(String, Vec<(String, String)>)>;

/// One parsed syslog message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub priority: u8,
    /// `1` for RFC 5424, `None` for RFC 3164 (BSD).
    pub version: Option<u8>,
    pub timestamp: Option<DateTime<Utc>>,
    pub hostname: Option<String>,
    pub app_name: Option<String>,
    pub proc_id: Option<String>,
    pub msg_id: Option<String>,
    pub structured_data: StructuredData,
    pub message: String,
}

impl Message {
    pub fn facility(&self) -> u8 {
        self.priority >> 3
    }

    pub fn severity(&self) -> u8 {
        self.priority & 7
    }
}

/// Why a line is not a syslog message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a syslog message: {reason} at byte {offset}")]
pub struct ParseError {
    pub reason: &'static str,
    pub offset: usize,
}

type Parsed<'a, T> = IResult<&'a str, T>;

/// Parses one message. `received` is used to give an RFC 3164 timestamp
/// (which has no year or zone) its year, taken as UTC.
pub fn parse(line: &str, received: DateTime<Utc>) -> Result<Message, ParseError> {
    let line = line.trim_end_matches(['\n', '\r', '\0']);
    let fail = |reason: &'static str, rest: &str| ParseError { reason, offset: line.len() - rest.len() };
    let (after_priority, priority) =
        priority(line).map_err(|_| fail("expected <PRI> (a priority 0-191 in angle brackets)", line))?;
    if let Ok((after_version, version)) = version(after_priority) {
        return rfc5424(after_version, priority, version)
            .map_err(|_| fail("malformed RFC 5424 header", after_version));
    }
    Ok(rfc3164(after_priority, priority, received))
}

fn priority(input: &str) -> Parsed<'_, u8> {
    map_res(
        delimited(char('<'), take_while_m_n(1, 3, |c: char| c.is_ascii_digit()), char('>')),
        |digits: &str| {
            digits
                .parse::<u8>()
                .map_err(|_| ())
                .and_then(|value| if value <= 191 { Ok(value) } else { Err(()) })
        },
    )
    .parse(input)
}

fn version(input: &str) -> Parsed<'_, u8> {
    let (rest, digits) = take_while_m_n(1, 2, |c: char| c.is_ascii_digit()).parse(input)?;
    let (rest, _) = char(' ').parse(rest)?;
    let value = digits
        .parse::<u8>()
        .map_err(|_| nom::Err::Error(nom::error::Error::new(input, nom::error::ErrorKind::Digit)))?;
    if value == 0 {
        return Err(nom::Err::Error(nom::error::Error::new(input, nom::error::ErrorKind::Verify)));
    }
    Ok((rest, value))
}

/// A header field: `-` is absent.
fn field(input: &str) -> Parsed<'_, Option<String>> {
    let (rest, text) = take_while1(|c: char| c != ' ').parse(input)?;
    Ok((rest, if text == "-" { None } else { Some(text.to_owned()) }))
}

fn rfc5424(input: &str, priority: u8, version: u8) -> Result<Message, nom::Err<nom::error::Error<&str>>> {
    let (rest, timestamp) = field(input)?;
    let (rest, hostname) = preceded(char(' '), field).parse(rest)?;
    let (rest, app_name) = preceded(char(' '), field).parse(rest)?;
    let (rest, proc_id) = preceded(char(' '), field).parse(rest)?;
    let (rest, msg_id) = preceded(char(' '), field).parse(rest)?;
    let (rest, _) = char(' ').parse(rest)?;
    let (rest, structured_data) = alt((nil_structured_data, many0(sd_element))).parse(rest)?;
    let message = rest.strip_prefix(' ').unwrap_or(rest);
    let timestamp = timestamp
        .as_deref()
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .map(|time| time.with_timezone(&Utc));
    // RFC 5424 allows a UTF-8 byte order mark before the message.
    let message = message.strip_prefix('\u{feff}').unwrap_or(message).to_owned();
    Ok(Message {
        priority,
        version: Some(version),
        timestamp,
        hostname,
        app_name,
        proc_id,
        msg_id,
        structured_data,
        message,
    })
}

fn nil_structured_data(input: &str) -> Parsed<'_, StructuredData> {
    let (rest, _) = char('-').parse(input)?;
    Ok((rest, Vec::new()))
}

/// `[id name="value" ...]`, with `\"`, `\\` and `\]` escapes in values.
fn sd_element(input: &str) -> Parsed<'_, (String, Vec<(String, String)>)> {
    let (rest, _) = char('[').parse(input)?;
    let (rest, id) = take_while1(|c: char| c != ' ' && c != ']' && c != '=' && c != '"').parse(rest)?;
    let (rest, params) = many0(preceded(char(' '), sd_param)).parse(rest)?;
    let (rest, _) = char(']').parse(rest)?;
    Ok((rest, (id.to_owned(), params)))
}

fn sd_param(input: &str) -> Parsed<'_, (String, String)> {
    let (rest, name) = take_while1(|c: char| c != ' ' && c != ']' && c != '=' && c != '"').parse(input)?;
    let (rest, _) = tag("=\"").parse(rest)?;
    let mut value = String::new();
    let mut chars = rest.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Ok((&rest[at + 1..], (name.to_owned(), value))),
            '\\' => match chars.next() {
                Some((_, escaped @ ('"' | '\\' | ']'))) => value.push(escaped),
                Some((_, other)) => {
                    value.push('\\');
                    value.push(other);
                }
                None => break,
            },
            other => value.push(other),
        }
    }
    Err(nom::Err::Error(nom::error::Error::new(input, nom::error::ErrorKind::Char)))
}

const MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// RFC 3164 is loose: `Mmm dd hh:mm:ss HOST TAG[PID]: MSG`, any part of
/// which real senders leave out. What does not fit stays in the message.
fn rfc3164(input: &str, priority: u8, received: DateTime<Utc>) -> Message {
    let mut message = Message {
        priority,
        version: None,
        timestamp: None,
        hostname: None,
        app_name: None,
        proc_id: None,
        msg_id: None,
        structured_data: Vec::new(),
        message: input.to_owned(),
    };
    let Ok((after_time, time)) = bsd_timestamp(input) else {
        return message;
    };
    message.timestamp = Some(with_year(time, received));
    let after_time = after_time.strip_prefix(' ').unwrap_or(after_time);
    // A host is a word followed by a space that is not itself a `tag:`.
    let (after_host, host) =
        match take_while1::<_, _, nom::error::Error<&str>>(|c: char| c != ' ').parse(after_time) {
            Ok((rest, word)) if rest.starts_with(' ') && !word.ends_with(':') && !word.contains('[') => {
                (&rest[1..], Some(word))
            }
            _ => (after_time, None),
        };
    message.hostname = host.map(str::to_owned);
    match app_tag(after_host) {
        Ok((rest, (app, pid))) => {
            message.app_name = Some(app.to_owned());
            message.proc_id = pid.map(str::to_owned);
            message.message = rest.strip_prefix(' ').unwrap_or(rest).to_owned();
        }
        Err(_) => message.message = after_host.to_owned(),
    }
    message
}

/// `Nov 23 21:42:45` or `Nov  3 21:42:45`.
fn bsd_timestamp(input: &str) -> Parsed<'_, (u32, u32, u32, u32, u32)> {
    let (rest, month) = take_while_m_n(3, 3, |c: char| c.is_ascii_alphabetic()).parse(input)?;
    let month = MONTHS
        .iter()
        .position(|name| *name == month)
        .ok_or(nom::Err::Error(nom::error::Error::new(input, nom::error::ErrorKind::Tag)))?
        as u32
        + 1;
    let (rest, _) = take_while1(|c: char| c == ' ').parse(rest)?;
    let (rest, day) = map_res(digit1, str::parse::<u32>).parse(rest)?;
    let (rest, _) = char(' ').parse(rest)?;
    let (rest, hour) =
        map_res(take_while_m_n(2, 2, |c: char| c.is_ascii_digit()), str::parse::<u32>).parse(rest)?;
    let (rest, minute) =
        map_res(preceded(char(':'), take_while_m_n(2, 2, |c: char| c.is_ascii_digit())), str::parse::<u32>)
            .parse(rest)?;
    let (rest, second) =
        map_res(preceded(char(':'), take_while_m_n(2, 2, |c: char| c.is_ascii_digit())), str::parse::<u32>)
            .parse(rest)?;
    Ok((rest, (month, day, hour, minute, second)))
}

/// The year a BSD timestamp without one most likely has: the received
/// year, or the one before when that would put the message in the future
/// (a December message read in January).
fn with_year(
    (month, day, hour, minute, second): (u32, u32, u32, u32, u32),
    received: DateTime<Utc>,
) -> DateTime<Utc> {
    let build = |year: i32| {
        NaiveDateTime::parse_from_str(
            &format!("{year}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}"),
            "%Y-%m-%d %H:%M:%S",
        )
        .ok()
        .map(|naive| Utc.from_utc_datetime(&naive))
    };
    match build(received.year()) {
        Some(time) if time <= received + chrono::Duration::days(1) => time,
        Some(_) => build(received.year() - 1).unwrap_or(received),
        None => received,
    }
}

/// `app[123]:` or `app:`.
fn app_tag(input: &str) -> Parsed<'_, (&str, Option<&str>)> {
    let (rest, app) = take_while1(|c: char| c != '[' && c != ':' && c != ' ').parse(input)?;
    let (rest, pid) = opt(delimited(char('['), take_while(|c: char| c != ']'), char(']'))).parse(rest)?;
    let (rest, _) = char(':').parse(rest)?;
    Ok((rest, (app, pid)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
    }

    #[test]
    fn rfc5424_as_logger_sends_it() {
        let line = "<13>1 2026-11-23T21:42:45.534783+00:00 vm app 4242 ID47 [timeQuality tzKnown=\"1\" isSynced=\"0\"][meta a=\"x\\\"y\"] hello world\n";
        let message = parse(line, received()).unwrap();
        assert_eq!((message.facility(), message.severity()), (1, 5));
        assert_eq!(message.version, Some(1));
        assert_eq!(message.hostname.as_deref(), Some("vm"));
        assert_eq!(message.app_name.as_deref(), Some("app"));
        assert_eq!(message.proc_id.as_deref(), Some("4242"));
        assert_eq!(message.msg_id.as_deref(), Some("ID47"));
        assert_eq!(message.structured_data.len(), 2);
        assert_eq!(
            message.structured_data[1],
            ("meta".to_owned(), vec![("a".to_owned(), "x\"y".to_owned())])
        );
        assert_eq!(message.message, "hello world");
        assert_eq!(message.timestamp.unwrap().timestamp_subsec_micros(), 534_783);
    }

    #[test]
    fn rfc5424_with_nil_values_and_no_message() {
        let message = parse("<165>1 - - - - - -", received()).unwrap();
        assert_eq!((message.facility(), message.severity()), (20, 5));
        assert!(message.timestamp.is_none() && message.hostname.is_none() && message.message.is_empty());
    }

    #[test]
    fn rfc3164_as_logger_and_daemons_send_it() {
        let message = parse("<13>Nov 23 21:42:45 vm app: msg", received()).unwrap();
        assert_eq!(message.version, None);
        assert_eq!(message.hostname.as_deref(), Some("vm"));
        assert_eq!(message.app_name.as_deref(), Some("app"));
        assert_eq!(message.message, "msg");
        assert_eq!(message.timestamp.unwrap(), Utc.with_ymd_and_hms(2026, 11, 23, 21, 42, 45).unwrap());
        let with_pid =
            parse("<86>Nov  3 01:02:03 node-a sshd[812]: Accepted publickey for root", received()).unwrap();
        assert_eq!((with_pid.app_name.as_deref(), with_pid.proc_id.as_deref()), (Some("sshd"), Some("812")));
        assert_eq!(with_pid.message, "Accepted publickey for root");
        let no_host = parse("<13>Nov 23 21:42:45 app: msg", received()).unwrap();
        assert_eq!((no_host.hostname, no_host.app_name.as_deref()), (None, Some("app")));
        let december =
            parse("<13>Dec 31 23:59:59 vm app: msg", Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 5).unwrap())
                .unwrap();
        assert_eq!(december.timestamp.unwrap().year(), 2026);
        let bare = parse("<13>just some text", received()).unwrap();
        assert_eq!(bare.message, "just some text");
    }

    #[test]
    fn bad_priorities_are_refused_with_where() {
        for (line, offset) in [("no priority", 0), ("<192>1 - - - - - -", 0), ("<1a>x", 0)] {
            let error = parse(line, received()).unwrap_err();
            assert_eq!(error.offset, offset, "{line}");
            assert!(error.to_string().contains("expected <PRI>"), "{error}");
        }
        let error = parse("<13>1 2026-11-23T21:42:45Z vm", received()).unwrap_err();
        assert!(error.to_string().contains("malformed RFC 5424 header"), "{error}");
    }
}
