//! The secure-forward handshake (HELO / PING / PONG with a shared key).
//!
//! Digests are `hex(sha512(salt + hostname + nonce + shared_key))`, over the
//! raw bytes as sent; a user's password digest is
//! `hex(sha512(auth_salt + username + password))`.

use rand::RngCore;
use rmpv::Value as Msgpack;
use sha2::{Digest, Sha512};

/// The shared key, this server's name, and the users allowed in (none: any
/// client knowing the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardAuth {
    pub shared_key: String,
    pub self_hostname: String,
    /// `(username, password)` pairs; when not empty, PING must name one.
    pub users: Vec<(String, String)>,
}

/// One connection's handshake: the nonce and salt sent in HELO.
pub struct Handshake {
    nonce: [u8; 16],
    auth_salt: Option<[u8; 16]>,
}

impl Handshake {
    pub fn new(auth: &ForwardAuth) -> Handshake {
        let mut rng = rand::rng();
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        let auth_salt = (!auth.users.is_empty()).then(|| {
            let mut salt = [0u8; 16];
            rng.fill_bytes(&mut salt);
            salt
        });
        Handshake { nonce, auth_salt }
    }

    /// `["HELO", {"nonce": bin, "auth": bin or "", "keepalive": true}]`.
    pub fn helo(&self) -> Msgpack {
        let auth = match &self.auth_salt {
            Some(salt) => Msgpack::Binary(salt.to_vec()),
            None => Msgpack::from(""),
        };
        Msgpack::Array(vec![
            Msgpack::from("HELO"),
            Msgpack::Map(vec![
                (Msgpack::from("nonce"), Msgpack::Binary(self.nonce.to_vec())),
                (Msgpack::from("auth"), auth),
                (Msgpack::from("keepalive"), Msgpack::Boolean(true)),
            ]),
        ])
    }

    /// Checks a PING; answers the PONG to send and, when refused, why.
    pub fn answer(&self, auth: &ForwardAuth, ping: &Msgpack) -> (Msgpack, Result<String, String>) {
        match self.check(auth, ping) {
            Ok((client_hostname, shared_key_salt)) => {
                let digest = digest(&[
                    &shared_key_salt,
                    auth.self_hostname.as_bytes(),
                    &self.nonce,
                    auth.shared_key.as_bytes(),
                ]);
                let pong = Msgpack::Array(vec![
                    Msgpack::from("PONG"),
                    Msgpack::Boolean(true),
                    Msgpack::from(""),
                    Msgpack::from(auth.self_hostname.as_str()),
                    Msgpack::from(digest),
                ]);
                (pong, Ok(client_hostname))
            }
            Err(reason) => {
                let pong = Msgpack::Array(vec![
                    Msgpack::from("PONG"),
                    Msgpack::Boolean(false),
                    Msgpack::from(reason.as_str()),
                    Msgpack::from(""),
                    Msgpack::from(""),
                ]);
                (pong, Err(reason))
            }
        }
    }

    fn check(&self, auth: &ForwardAuth, ping: &Msgpack) -> Result<(String, Vec<u8>), String> {
        let Msgpack::Array(parts) = ping else {
            return Err("expected PING, the client sent data before authenticating".into());
        };
        if parts.first().and_then(Msgpack::as_str) != Some("PING") {
            return Err("expected PING, the client sent data before authenticating".into());
        }
        if parts.len() != 6 {
            return Err(format!("PING has {} elements, expected 6", parts.len()));
        }
        let client_hostname = bytes_of(&parts[1]).ok_or("PING hostname is not a string")?;
        let shared_key_salt = bytes_of(&parts[2]).ok_or("PING salt is not a string")?;
        let client_digest = bytes_of(&parts[3]).ok_or("PING digest is not a string")?;
        let expected = digest(&[&shared_key_salt, &client_hostname, &self.nonce, auth.shared_key.as_bytes()]);
        if !constant_time_eq(&client_digest, expected.as_bytes()) {
            return Err("shared key mismatch".into());
        }
        if let Some(auth_salt) = &self.auth_salt {
            let username = bytes_of(&parts[4]).unwrap_or_default();
            let password_digest = bytes_of(&parts[5]).unwrap_or_default();
            let known = auth.users.iter().find(|(name, _)| name.as_bytes() == username.as_slice());
            let accepted = known.is_some_and(|(name, password)| {
                let expected = digest(&[auth_salt, name.as_bytes(), password.as_bytes()]);
                constant_time_eq(&password_digest, expected.as_bytes())
            });
            if !accepted {
                return Err("username/password mismatch".into());
            }
        }
        Ok((String::from_utf8_lossy(&client_hostname).into_owned(), shared_key_salt))
    }
}

fn bytes_of(value: &Msgpack) -> Option<Vec<u8>> {
    match value {
        Msgpack::String(text) => Some(text.as_bytes().to_vec()),
        Msgpack::Binary(bytes) => Some(bytes.clone()),
        _ => None,
    }
}

/// `hex(sha512(parts...))`.
pub fn digest(parts: &[&[u8]]) -> String {
    let mut hasher = Sha512::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect()
}

fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    left.len() == right.len() && left.iter().zip(right).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ping(handshake: &Handshake, key: &str, user: &str, password: &str) -> Msgpack {
        let salt = b"client-salt";
        let nonce = handshake.nonce;
        let password_digest = match &handshake.auth_salt {
            Some(auth_salt) => digest(&[auth_salt, user.as_bytes(), password.as_bytes()]),
            None => digest(&[]),
        };
        Msgpack::Array(vec![
            "PING".into(),
            "node-a".into(),
            Msgpack::Binary(salt.to_vec()),
            digest(&[salt, b"node-a", &nonce, key.as_bytes()]).into(),
            user.into(),
            password_digest.into(),
        ])
    }

    #[test]
    fn users_are_checked_when_configured() {
        let auth = ForwardAuth {
            shared_key: "key".into(),
            self_hostname: "vigil".into(),
            users: vec![("fluent".into(), "pw".into())],
        };
        let handshake = Handshake::new(&auth);
        assert!(matches!(handshake.helo()[1]["auth"], Msgpack::Binary(ref salt) if salt.len() == 16));
        let (pong, outcome) = handshake.answer(&auth, &ping(&handshake, "key", "fluent", "pw"));
        assert_eq!(outcome, Ok("node-a".to_owned()));
        let expected = digest(&[b"client-salt", b"vigil", &handshake.nonce, b"key"]);
        assert_eq!(pong[4].as_str(), Some(expected.as_str()));
        let (pong, outcome) = handshake.answer(&auth, &ping(&handshake, "key", "fluent", "wrong"));
        assert_eq!(outcome, Err("username/password mismatch".to_owned()));
        assert_eq!(pong[1], Msgpack::Boolean(false));
        let (_, outcome) = handshake.answer(&auth, &ping(&handshake, "other", "fluent", "pw"));
        assert_eq!(outcome, Err("shared key mismatch".to_owned()));
    }

    #[test]
    fn without_users_any_password_digest_is_accepted() {
        // @fluent-org/logger sends sha512("") as the password digest when no user is set.
        let auth = ForwardAuth { shared_key: "key".into(), self_hostname: "vigil".into(), users: Vec::new() };
        let handshake = Handshake::new(&auth);
        assert_eq!(handshake.helo()[1]["auth"], Msgpack::from(""));
        let (_, outcome) = handshake.answer(&auth, &ping(&handshake, "key", "", ""));
        assert_eq!(outcome, Ok("node-a".to_owned()));
    }
}
