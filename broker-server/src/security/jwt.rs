//! JWT bearer tokens: the keys of `[auth.jwt]`, and checking a token into a user name
//! and optional topic permissions.
//!
//! Accepted algorithms: HS256 (shared secret), RS256 (RSA public key) and ES256 (P-256
//! public key), from a PEM file, the shared secret, or a JWKS file whose `kid`s select
//! the key. A token must carry `exp`; `aud` and `iss` are checked when configured.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use bytestring::ByteString;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::Permissions;
use crate::config::JwtConfig;

/// `[auth.jwt]` keys that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum JwtKeyError {
    /// A key file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A key file holds no usable key.
    #[error("{path}: {message}")]
    Key {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Why a token was refused (logged; the client only sees "bad user name or password").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenError {
    /// `exp` is in the past.
    #[error("token expired")]
    Expired,
    /// No configured key verifies the signature (or the `kid` names no key).
    #[error("bad signature or unknown key")]
    BadSignature,
    /// `aud` does not name the configured audience.
    #[error("wrong audience")]
    WrongAudience,
    /// Anything else: malformed, wrong issuer, not yet valid, no `exp`, an algorithm
    /// other than HS256/RS256/ES256, claims of the wrong shape.
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenClaims {
    /// The user name (from `username_claim`).
    pub username: ByteString,
    /// Topic permissions (from `permissions_claim`), if the token has them.
    pub permissions: Option<Arc<Permissions>>,
}

/// One verification key.
struct Key {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// The loaded `[auth.jwt]` keys and rules.
pub(crate) struct JwtVerifier {
    keys: Vec<Key>,
    config: JwtConfig,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("keys", &self.keys.len())
            .field("audience", &self.config.audience)
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, JwtKeyError> {
    std::fs::read(path).map_err(|source| JwtKeyError::Io {
        path: path.display().to_string(),
        source,
    })
}

fn key_error(path: &Path, message: impl Into<String>) -> JwtKeyError {
    JwtKeyError::Key {
        path: path.display().to_string(),
        message: message.into(),
    }
}

impl JwtVerifier {
    /// Loads the keys `config` names.
    pub(crate) fn load(config: &JwtConfig) -> Result<Self, JwtKeyError> {
        let mut keys = Vec::new();
        if let Some(secret) = &config.hmac_secret {
            keys.push(Key {
                kid: None,
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(secret.as_bytes()),
            });
        }
        if let Some(path) = &config.public_key_file {
            let pem = read(path)?;
            let (algorithm, key) = match DecodingKey::from_rsa_pem(&pem) {
                Ok(key) => (Algorithm::RS256, key),
                Err(_) => match DecodingKey::from_ec_pem(&pem) {
                    Ok(key) => (Algorithm::ES256, key),
                    Err(err) => {
                        return Err(key_error(
                            path,
                            format!("not an RSA or EC public key in PEM: {err}"),
                        ));
                    }
                },
            };
            keys.push(Key {
                kid: None,
                algorithm,
                key,
            });
        }
        if let Some(path) = &config.jwks_file {
            let set: JwkSet = serde_json::from_slice(&read(path)?)
                .map_err(|err| key_error(path, format!("not a JWKS document: {err}")))?;
            for jwk in &set.keys {
                let kid = jwk.common.key_id.clone();
                let name = kid.as_deref().unwrap_or("(no kid)");
                let algorithm = match (&jwk.common.key_algorithm, &jwk.algorithm) {
                    (Some(KeyAlgorithm::HS256), _) => Algorithm::HS256,
                    (Some(KeyAlgorithm::RS256), _) => Algorithm::RS256,
                    (Some(KeyAlgorithm::ES256), _) => Algorithm::ES256,
                    (Some(other), _) => {
                        return Err(key_error(
                            path,
                            format!("key {name}: algorithm {other:?} is not HS256, RS256 or ES256"),
                        ));
                    }
                    (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
                    (None, AlgorithmParameters::EllipticCurve(p))
                        if p.curve == EllipticCurve::P256 =>
                    {
                        Algorithm::ES256
                    }
                    (None, AlgorithmParameters::OctetKey(_)) => Algorithm::HS256,
                    (None, _) => {
                        return Err(key_error(
                            path,
                            format!("key {name}: not an RSA, P-256 or symmetric key"),
                        ));
                    }
                };
                let key = DecodingKey::from_jwk(jwk)
                    .map_err(|err| key_error(path, format!("key {name}: {err}")))?;
                keys.push(Key {
                    kid,
                    algorithm,
                    key,
                });
            }
            if set.keys.is_empty() {
                return Err(key_error(path, "the JWKS holds no keys"));
            }
        }
        Ok(Self {
            keys,
            config: config.clone(),
        })
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.config.leeway_secs;
        validation.set_required_spec_claims(&["exp"]);
        match &self.config.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        if let Some(issuer) = &self.config.issuer {
            validation.set_issuer(&[issuer]);
        }
        validation
    }

    /// Checks `token` (compact JWS) and reads its user name and permissions.
    pub(crate) fn verify(&self, token: &str) -> Result<TokenClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|err| TokenError::Invalid(err.to_string()))?;
        if !matches!(
            header.alg,
            Algorithm::HS256 | Algorithm::RS256 | Algorithm::ES256
        ) {
            return Err(TokenError::Invalid(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let candidates = self.keys.iter().filter(|k| {
            k.algorithm == header.alg
                && match (&header.kid, &k.kid) {
                    (Some(wanted), Some(kid)) => wanted == kid,
                    _ => true,
                }
        });
        let validation = self.validation(header.alg);
        let mut outcome = Err(TokenError::BadSignature);
        for key in candidates {
            match jsonwebtoken::decode::<Value>(token, &key.key, &validation) {
                Ok(data) => {
                    outcome = Ok(data.claims);
                    break;
                }
                Err(err) => {
                    let error = match err.kind() {
                        ErrorKind::InvalidSignature => continue,
                        ErrorKind::ExpiredSignature => TokenError::Expired,
                        ErrorKind::InvalidAudience => TokenError::WrongAudience,
                        _ => TokenError::Invalid(err.to_string()),
                    };
                    outcome = Err(error);
                    break;
                }
            }
        }
        self.claims(&outcome?)
    }

    fn claims(&self, claims: &Value) -> Result<TokenClaims, TokenError> {
        let claim = &self.config.username_claim;
        let username = claims
            .get(claim)
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| TokenError::Invalid(format!("no user name in claim {claim:?}")))?;
        let claim = &self.config.permissions_claim;
        let permissions = match claims.get(claim) {
            None => None,
            Some(value) => Some(Arc::new(permissions(value).ok_or_else(|| {
                TokenError::Invalid(format!(
                    "claim {claim:?} is not {{\"publish\": [filters], \"subscribe\": [filters]}}"
                ))
            })?)),
        };
        Ok(TokenClaims {
            username: username.into(),
            permissions,
        })
    }
}

/// Reads `{"publish": [...], "subscribe": [...]}` (either list may be missing).
fn permissions(value: &Value) -> Option<Permissions> {
    let object = value.as_object()?;
    let list = |name: &str| -> Option<Vec<ByteString>> {
        match object.get(name) {
            None => Some(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| item.as_str().map(ByteString::from))
                .collect(),
            Some(_) => None,
        }
    };
    Some(Permissions {
        publish: list("publish")?,
        subscribe: list("subscribe")?,
    })
}

/// Whether `text` looks like a compact JWS (three base64url parts, a JSON header):
/// the password field holds a token rather than a password.
pub(crate) fn looks_like_jwt(text: &str) -> bool {
    text.starts_with("eyJ")
        && text.split('.').count() == 3
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    fn verifier() -> JwtVerifier {
        JwtVerifier::load(&JwtConfig {
            hmac_secret: Some("s3cret-s3cret-s3cret".into()),
            ..JwtConfig::default()
        })
        .unwrap()
    }

    fn token(claims: &Value) -> String {
        jsonwebtoken::encode(
            &Header::default(),
            claims,
            &EncodingKey::from_secret(b"s3cret-s3cret-s3cret"),
        )
        .unwrap()
    }

    fn exp() -> u64 {
        jsonwebtoken::get_current_timestamp() + 600
    }

    #[test]
    fn permission_claims_become_permissions() {
        let claims = serde_json::json!({
            "sub": "dash", "exp": exp(),
            "mqtt": {"publish": ["cmd/dash/#"], "subscribe": ["state/+", "$SYS/#"]},
        });
        let got = verifier().verify(&token(&claims)).unwrap();
        assert_eq!(&*got.username, "dash");
        let permissions = got.permissions.unwrap();
        assert_eq!(permissions.publish, vec![ByteString::from("cmd/dash/#")]);
        assert_eq!(permissions.subscribe.len(), 2);
        // No claim: the ACL decides.
        let plain = serde_json::json!({"sub": "dash", "exp": exp()});
        assert_eq!(verifier().verify(&token(&plain)).unwrap().permissions, None);
        // A claim of the wrong shape refuses the token rather than granting nothing
        // or everything.
        let bad = serde_json::json!({"sub": "dash", "exp": exp(), "mqtt": {"publish": "a/#"}});
        assert!(matches!(
            verifier().verify(&token(&bad)),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn passwords_are_told_from_tokens() {
        assert!(looks_like_jwt(&token(
            &serde_json::json!({"sub": "a", "exp": exp()})
        )));
        assert!(!looks_like_jwt("hunter2"));
        assert!(!looks_like_jwt("eyJ.but has spaces.x"));
    }

    #[test]
    fn unusable_key_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        std::fs::write(&path, "not a key").unwrap();
        let err = JwtVerifier::load(&JwtConfig {
            public_key_file: Some(path),
            ..JwtConfig::default()
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("key.pem: not an RSA or EC public key"),
            "{err}"
        );
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, r#"{"keys": []}"#).unwrap();
        let err = JwtVerifier::load(&JwtConfig {
            jwks_file: Some(path),
            ..JwtConfig::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("holds no keys"), "{err}");
    }
}
