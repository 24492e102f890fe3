//! SCRAM-SHA-256 (RFC 5802, RFC 7677) as an MQTT 5 enhanced authentication mechanism
//! (§4.12): Authentication Method `SCRAM-SHA-256`.
//!
//! ```text
//!  CONNECT  auth data = client-first   "n,,n=alice,r=<client nonce>"
//!  AUTH 0x18 auth data = server-first  "r=<client nonce><server nonce>,s=<salt>,i=4096"
//!  AUTH 0x18 auth data = client-final  "c=biws,r=<nonce>,p=<proof>"
//!  CONNACK 0x00 auth data = server-final "v=<server signature>"
//! ```
//!
//! The credentials are the `$scram-sha-256$` lines of the password file (see
//! [`super::passwd`]), looked up in the policy current when the exchange starts, so a
//! reload applies to the next login. An unknown user gets a made-up salt and fails at
//! the proof, like a wrong password, so the exchange does not reveal which users
//! exist. Channel binding is not offered (`n` or `y` flags only).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use bytestring::ByteString;
use parking_lot::RwLock;
use protocol::ReasonCode;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::enhanced::{AuthExchange, AuthMechanism, AuthStep};
use super::passwd::{SCRAM_ITERATIONS, ScramCredential, hmac_sha256};
use super::{Identity, Policy};

/// The Authentication Method name.
pub(crate) const METHOD: &str = "SCRAM-SHA-256";

/// The SCRAM-SHA-256 mechanism, reading credentials from the broker's current policy.
#[derive(Debug)]
pub struct ScramMechanism {
    policy: Arc<RwLock<Arc<Policy>>>,
    /// Secret for the made-up salts of unknown users (stable for the process, so
    /// asking twice gives the same salt, as for a real user).
    secret: [u8; 32],
}

impl ScramMechanism {
    pub(super) fn new(policy: Arc<RwLock<Arc<Policy>>>) -> Self {
        let mut secret = [0u8; 32];
        // Without OS randomness the salts of unknown users are predictable, which only
        // reveals that they are unknown.
        let _ = getrandom::fill(&mut secret);
        Self { policy, secret }
    }
}

impl AuthMechanism for ScramMechanism {
    fn method(&self) -> &str {
        METHOD
    }

    fn begin(&self, _client_id: &str, username: Option<&str>) -> Box<dyn AuthExchange> {
        Box::new(ScramExchange {
            policy: self.policy.read().clone(),
            secret: self.secret,
            connect_username: username.map(str::to_string),
            state: State::Start,
            identity: None,
        })
    }
}

#[derive(Debug)]
enum State {
    /// Waiting for client-first (from CONNECT).
    Start,
    /// server-first sent; waiting for client-final.
    Challenged {
        user: String,
        gs2_header: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
        credential: Option<Box<ScramCredential>>,
    },
    /// Succeeded or failed; any further data fails.
    Done,
}

/// One SCRAM-SHA-256 exchange.
#[derive(Debug)]
pub(crate) struct ScramExchange {
    policy: Arc<Policy>,
    secret: [u8; 32],
    connect_username: Option<String>,
    state: State,
    identity: Option<Identity>,
}

impl AuthExchange for ScramExchange {
    fn step(&mut self, data: Option<&[u8]>) -> AuthStep {
        let state = std::mem::replace(&mut self.state, State::Done);
        let text = data.and_then(|d| std::str::from_utf8(d).ok());
        let Some(text) = text else {
            return AuthStep::Failure(ReasonCode::NotAuthorized);
        };
        match state {
            State::Start => self.client_first(text),
            State::Challenged {
                user,
                gs2_header,
                client_first_bare,
                server_first,
                nonce,
                credential,
            } => {
                let Some(final_message) = ClientFinal::parse(text) else {
                    return AuthStep::Failure(ReasonCode::NotAuthorized);
                };
                let expected_binding = STANDARD.encode(gs2_header.as_bytes());
                if final_message.channel_binding != expected_binding || final_message.nonce != nonce
                {
                    return AuthStep::Failure(ReasonCode::NotAuthorized);
                }
                let Some(credential) = credential else {
                    return AuthStep::Failure(ReasonCode::BadUserNameOrPassword);
                };
                let auth_message = format!(
                    "{client_first_bare},{server_first},{}",
                    final_message.without_proof
                );
                let signature = hmac_sha256(&credential.stored_key, auth_message.as_bytes());
                let client_key: Vec<u8> = final_message
                    .proof
                    .iter()
                    .zip(signature)
                    .map(|(p, s)| p ^ s)
                    .collect();
                let stored_key = Sha256::digest(&client_key);
                if final_message.proof.len() != 32
                    || !bool::from(stored_key.as_slice().ct_eq(&credential.stored_key))
                {
                    return AuthStep::Failure(ReasonCode::BadUserNameOrPassword);
                }
                let server_signature = hmac_sha256(&credential.server_key, auth_message.as_bytes());
                self.identity = Some(Identity {
                    username: Some(ByteString::from(user)),
                    permissions: None,
                });
                let server_final = format!("v={}", STANDARD.encode(server_signature));
                AuthStep::Success(Some(Bytes::from(server_final)))
            }
            State::Done => AuthStep::Failure(ReasonCode::ProtocolError),
        }
    }

    fn identity(&self) -> Option<Identity> {
        self.identity.clone()
    }
}

impl ScramExchange {
    fn client_first(&mut self, text: &str) -> AuthStep {
        let Some(first) = ClientFirst::parse(text) else {
            return AuthStep::Failure(ReasonCode::NotAuthorized);
        };
        if self
            .connect_username
            .as_deref()
            .is_some_and(|u| !u.is_empty() && u != first.user)
        {
            // CONNECT named another user than the SCRAM exchange.
            return AuthStep::Failure(ReasonCode::BadUserNameOrPassword);
        }
        let credential = self
            .policy
            .passwords
            .as_ref()
            .and_then(|p| p.scram(&first.user))
            .cloned()
            .map(Box::new);
        let (salt, iterations) = match &credential {
            Some(c) => (c.salt.clone(), c.iterations),
            None => (
                hmac_sha256(&self.secret, first.user.as_bytes())[..16].to_vec(),
                SCRAM_ITERATIONS,
            ),
        };
        let mut server_nonce = [0u8; 18];
        if getrandom::fill(&mut server_nonce).is_err() {
            return AuthStep::Failure(ReasonCode::UnspecifiedError);
        }
        let nonce = format!("{}{}", first.nonce, STANDARD.encode(server_nonce));
        let server_first = format!("r={nonce},s={},i={iterations}", STANDARD.encode(salt));
        self.state = State::Challenged {
            user: first.user,
            gs2_header: first.gs2_header,
            client_first_bare: first.bare,
            server_first: server_first.clone(),
            nonce,
            credential,
        };
        AuthStep::Continue(Bytes::from(server_first))
    }
}

/// `gs2-header client-first-message-bare`.
struct ClientFirst {
    gs2_header: String,
    bare: String,
    user: String,
    nonce: String,
}

impl ClientFirst {
    fn parse(text: &str) -> Option<Self> {
        let mut parts = text.splitn(3, ',');
        let flag = parts.next()?;
        let authzid = parts.next()?;
        let bare = parts.next()?;
        // "p=…" asks for channel binding, which is not offered.
        if flag != "n" && flag != "y" {
            return None;
        }
        let mut fields = bare.split(',');
        let user = decode_saslname(fields.next()?.strip_prefix("n=")?)?;
        let nonce = fields.next()?.strip_prefix("r=")?;
        if nonce.is_empty() || !nonce.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return None;
        }
        if !authzid.is_empty() && decode_saslname(authzid.strip_prefix("a=")?)? != user {
            return None;
        }
        Some(Self {
            gs2_header: format!("{flag},{authzid},"),
            bare: bare.to_string(),
            user,
            nonce: nonce.to_string(),
        })
    }
}

/// `client-final-message`.
struct ClientFinal {
    channel_binding: String,
    nonce: String,
    without_proof: String,
    proof: Vec<u8>,
}

impl ClientFinal {
    fn parse(text: &str) -> Option<Self> {
        let (without_proof, proof) = text.rsplit_once(",p=")?;
        let mut fields = without_proof.split(',');
        let channel_binding = fields.next()?.strip_prefix("c=")?;
        let nonce = fields.next()?.strip_prefix("r=")?;
        Some(Self {
            channel_binding: channel_binding.to_string(),
            nonce: nonce.to_string(),
            without_proof: without_proof.to_string(),
            proof: STANDARD.decode(proof).ok()?,
        })
    }
}

/// RFC 5802 `saslname`: `=2C` is `,` and `=3D` is `=`; any other `=` is an error.
fn decode_saslname(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3)?;
        out.push(match escape {
            "=2C" => ',',
            "=3D" => '=',
            _ => return None,
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::passwd::PasswordFile;

    fn mechanism(file: &str) -> ScramMechanism {
        let policy = Policy {
            passwords: Some(PasswordFile::parse(file).unwrap()),
            ..Policy::default()
        };
        ScramMechanism::new(Arc::new(RwLock::new(Arc::new(policy))))
    }

    /// RFC 7677 §3's exchange, with the server nonce replaced by ours.
    #[test]
    fn rfc_7677_client_authenticates() {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let credential = ScramCredential::derive_with(b"pencil", salt, 4096);
        let mut file = PasswordFile::default();
        file.set_password("user", b"pencil", false).unwrap();
        let text = format!(
            "{file}user:{}\n",
            super::super::passwd::Credential::Scram(credential)
        );
        let m = mechanism(&text);
        let mut exchange = m.begin("c", None);
        let AuthStep::Continue(server_first) =
            exchange.step(Some(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"))
        else {
            panic!("expected a challenge");
        };
        let server_first = std::str::from_utf8(&server_first).unwrap().to_string();
        assert!(
            server_first.starts_with("r=rOprNGfwEbeRWgbNEkqO"),
            "{server_first}"
        );
        assert!(server_first.ends_with(",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"));
        let nonce = server_first[2..].split(',').next().unwrap();
        let salted = super::super::passwd::salted_password(
            b"pencil",
            &STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap(),
            4096,
        );
        let client_key = hmac_sha256(&salted, b"Client Key");
        let stored = Sha256::digest(client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("n=user,r=rOprNGfwEbeRWgbNEkqO,{server_first},{without_proof}");
        let signature = hmac_sha256(&stored, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let final_message = format!("{without_proof},p={}", STANDARD.encode(&proof));
        let step = exchange.step(Some(final_message.as_bytes()));
        let server_key = hmac_sha256(&salted, b"Server Key");
        let expected = format!(
            "v={}",
            STANDARD.encode(hmac_sha256(&server_key, auth_message.as_bytes()))
        );
        assert_eq!(step, AuthStep::Success(Some(Bytes::from(expected))));
        assert_eq!(
            exchange.identity().unwrap().username.as_deref(),
            Some("user")
        );

        // The same proof against a fresh exchange (another server nonce) fails.
        let mut replay = m.begin("c", None);
        assert!(matches!(
            replay.step(Some(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")),
            AuthStep::Continue(_)
        ));
        assert_eq!(
            replay.step(Some(final_message.as_bytes())),
            AuthStep::Failure(ReasonCode::NotAuthorized)
        );
        assert!(replay.identity().is_none());
    }

    #[test]
    fn unknown_users_get_a_stable_challenge_and_fail() {
        let m = mechanism("");
        let first = |m: &ScramMechanism| match m.begin("c", None).step(Some(b"n,,n=ghost,r=abc")) {
            AuthStep::Continue(data) => {
                let text = String::from_utf8(data.to_vec()).unwrap();
                text.split_once(",s=").unwrap().1.to_string()
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(first(&m), first(&m));
    }

    #[test]
    fn malformed_messages_fail() {
        let m = mechanism("");
        for bad in [
            &b"p=tls-unique,,n=u,r=x"[..],
            b"n,,r=x",
            b"n,,n=u=2X,r=x",
            b"n,a=other,n=u,r=x",
            b"\xff",
        ] {
            assert_eq!(
                m.begin("c", None).step(Some(bad)),
                AuthStep::Failure(ReasonCode::NotAuthorized),
                "{bad:?}"
            );
        }
        assert_eq!(
            m.begin("c", Some("bob")).step(Some(b"n,,n=alice,r=x")),
            AuthStep::Failure(ReasonCode::BadUserNameOrPassword)
        );
        assert_eq!(decode_saslname("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
    }
}
