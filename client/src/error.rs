//! Client-side failures, and what a transport failure really was: tonic reports a refused
//! connection or a rejected certificate as "transport error", with the cause several sources
//! down (hyper, then I/O, then a rustls alert).

use std::path::PathBuf;

/// Client-side failures.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The identity bundle is missing or unreadable.
    #[error("identity {dir}: {what}")]
    Identity {
        /// The bundle directory.
        dir: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// No connection could be made: nothing listens, the name does not resolve, or the
    /// server's certificate is not the one the bundle's CA vouches for.
    #[error("cannot reach {endpoint}: {detail}")]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// Why, in words (the transport's chain of causes, read).
        detail: String,
    },
    /// The server ended the TLS handshake over this identity's client certificate: signed by
    /// another CA, expired, revoked, or not a certificate of this platform.
    #[error(
        "the server rejected this identity's certificate ({detail}): re-issue it with \
         `erhai admin user add` (as an admin) or check --identity / ERHAI_IDENTITY"
    )]
    CertificateRejected {
        /// What the server's alert said.
        detail: String,
    },
    /// The server answered with an error.
    #[error("{}: {}", label(.0), .0.message())]
    Status(tonic::Status),
    /// Local data could not be read or written.
    #[error("{0}")]
    Data(String),
}

impl ClientError {
    /// Whether the server refused the call by policy (a column policy, a scenario's scope, a
    /// privacy budget), as opposed to failing it or denying the caller's role.
    pub fn is_refusal(&self) -> bool {
        matches!(self, ClientError::Status(s) if is_refusal(s))
    }

    /// Whether the call died in the transport (the connection, not the server's answer): what
    /// [`crate::probe::explain`] looks into.
    pub fn is_transport(&self) -> bool {
        matches!(self, ClientError::Status(s)
            if causes(s).any(|c| c.downcast_ref::<tonic::transport::Error>().is_some()))
    }

    /// A connection failure of `endpoint` in words: refused, unresolvable, rejected.
    pub(crate) fn connect(endpoint: &str, e: &(dyn std::error::Error + 'static)) -> ClientError {
        if let Some(detail) = rejected_certificate(e) {
            return ClientError::CertificateRejected { detail };
        }
        ClientError::Connect {
            endpoint: endpoint.to_string(),
            detail: connect_detail(e),
        }
    }
}

impl From<tonic::Status> for ClientError {
    /// With TLS 1.3 the client's handshake completes before the server has judged the client
    /// certificate, so a rejection arrives with the first call, as a status.
    fn from(s: tonic::Status) -> Self {
        if let Some(detail) = rejected_certificate(&s) {
            return ClientError::CertificateRejected { detail };
        }
        ClientError::Status(s)
    }
}

impl From<arrow::error::ArrowError> for ClientError {
    fn from(e: arrow::error::ArrowError) -> Self {
        ClientError::Data(e.to_string())
    }
}

fn is_refusal(s: &tonic::Status) -> bool {
    s.metadata()
        .get(erhai_proto::refusal::KEY)
        .is_some_and(|v| v.as_bytes() == erhai_proto::refusal::POLICY.as_bytes())
}

/// How a status reads: a refusal by policy says so rather than "permission denied".
fn label(s: &tonic::Status) -> &'static str {
    use tonic::Code as C;
    if is_refusal(s) {
        return "refused";
    }
    match s.code() {
        C::InvalidArgument => "invalid argument",
        C::PermissionDenied => "permission denied",
        C::Unauthenticated => "unauthenticated",
        C::NotFound => "not found",
        C::AlreadyExists => "already exists",
        C::FailedPrecondition => "failed precondition",
        C::DataLoss => "data loss",
        C::DeadlineExceeded => "deadline exceeded",
        C::ResourceExhausted => "resource exhausted",
        C::Unavailable => "unavailable",
        C::Aborted => "aborted",
        C::Internal => "internal error",
        _ => "error",
    }
}

/// `e` and its causes, including the error an `io::Error` wraps (which `io::Error::source`
/// skips: its own text already shows it, but its type is what tells a TLS alert apart).
fn causes<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    let mut next = Some(e);
    std::iter::from_fn(move || {
        let current = next?;
        next = match current.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as _).or(current.source()),
            None => current.source(),
        };
        Some(current)
    })
}

/// What the server said about our certificate, if a cause of `e` is its TLS alert. tokio-rustls
/// hands the alert up as text inside an `io::Error` ("received fatal alert: UnknownCA"), so the
/// text is read when the type is gone.
fn rejected_certificate(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    for cause in causes(e) {
        if let Some(rustls::Error::AlertReceived(alert)) = cause.downcast_ref::<rustls::Error>() {
            return certificate_alert(&format!("{alert:?}"));
        }
        let text = cause.to_string();
        if let Some((_, rest)) = text.split_once("received fatal alert: ") {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            return certificate_alert(&name);
        }
    }
    None
}

/// The certificate alert inside `e`, in words.
pub(crate) fn alert_in(e: &std::io::Error) -> Option<String> {
    rejected_certificate(e)
}

/// The alerts a server sends over a client certificate (RFC 8446 6.2, rustls' names), in words;
/// other alerts are not about the certificate.
fn certificate_alert(name: &str) -> Option<String> {
    let what = match name {
        "BadCertificate" => "bad certificate",
        "UnknownCA" => "signed by a CA this platform does not trust",
        "CertificateExpired" => "certificate expired",
        "CertificateRevoked" => "certificate revoked",
        "CertificateUnknown" => "certificate unknown",
        "UnsupportedCertificate" => "unsupported certificate",
        "CertificateRequired" => "no client certificate sent",
        "AccessDenied" => "access denied",
        // A certificate whose issuer's name matches the platform CA's but whose signature does
        // not verify under it: another deployment's CA of the same name.
        "DecryptError" => "its signature does not verify under this platform's CA",
        _ => return None,
    };
    Some(format!("TLS alert {name}: {what}"))
}

/// Why a connection could not be made, in words.
fn connect_detail(e: &(dyn std::error::Error + 'static)) -> String {
    for cause in causes(e) {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            match io.kind() {
                K::ConnectionRefused => {
                    return "connection refused (is `erhai serve` running?)".into();
                }
                K::TimedOut => return "the connection timed out".into(),
                _ => {}
            }
        }
        if let Some(rustls::Error::InvalidCertificate(why)) = cause.downcast_ref::<rustls::Error>()
        {
            return format!(
                "the server's certificate is not trusted by this identity's ca.pem ({why:?}): \
                 is the endpoint the platform that issued this identity?"
            );
        }
    }
    // Otherwise every cause's own text, once: wrappers often repeat their source's.
    let mut parts: Vec<String> = Vec::new();
    for cause in causes(e) {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_labelled_refused_and_other_denials_are_not() {
        let mut s = tonic::Status::permission_denied("column x");
        assert_eq!(
            ClientError::from(s.clone()).to_string(),
            "permission denied: column x"
        );
        s.metadata_mut().insert(
            erhai_proto::refusal::KEY,
            tonic::metadata::MetadataValue::from_static(erhai_proto::refusal::POLICY),
        );
        let e = ClientError::from(s);
        assert!(e.is_refusal());
        assert_eq!(e.to_string(), "refused: column x");
    }

    #[test]
    fn an_alert_inside_an_io_error_is_a_rejected_certificate() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA),
        );
        let e = ClientError::connect("https://127.0.0.1:1", &io);
        assert!(
            matches!(&e, ClientError::CertificateRejected { detail } if detail.contains("CA")),
            "{e}"
        );
    }

    #[test]
    fn an_alert_as_text_inside_a_status_is_a_rejected_certificate() {
        // The shape tonic gives a handshake the server ended: the alert survives only as text.
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "received fatal alert: DecryptError".to_string(),
        );
        let s = tonic::Status::from_error(Box::new(io));
        let e = ClientError::from(s);
        assert!(
            matches!(&e, ClientError::CertificateRejected { detail } if detail.contains("DecryptError")),
            "{e}"
        );
    }

    #[test]
    fn a_refused_connection_says_to_start_the_server() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = ClientError::connect("https://127.0.0.1:1", &io);
        assert_eq!(
            e.to_string(),
            "cannot reach https://127.0.0.1:1: connection refused (is `erhai serve` running?)"
        );
    }
}
