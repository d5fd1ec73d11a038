//! The closed sets of the row contract: outcome, actor kind, method, severity
//! and retention class.
//!
//! Each implements [`FromStr`] and [`Display`] with exactly the contract's
//! strings, so what a row stores is what these print.

use std::fmt;
use std::str::FromStr;

/// A string that is not one of a closed set's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseKindError {
    /// The set's name (`outcome`, `actor_kind`, `method`, `severity`, `retention_class`).
    pub field: &'static str,
    /// The string that did not parse.
    pub value: String,
    /// The accepted values.
    pub expected: &'static [&'static str],
}

impl fmt::Display for ParseKindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {} {:?}: expected one of {}",
            self.field,
            self.value,
            self.expected.join(", ")
        )
    }
}

impl std::error::Error for ParseKindError {}

macro_rules! closed_set {
    (
        $(#[$meta:meta])*
        $name:ident, $field:literal, default = $default:ident,
        { $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every accepted string, in declaration order.
            pub const VALUES: &'static [&'static str] = &[$($text),+];

            /// The contract's string for this value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $text, )+
                }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::$default
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseKindError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $text => Ok(Self::$variant), )+
                    _ => Err(ParseKindError {
                        field: $field,
                        value: s.to_owned(),
                        expected: Self::VALUES,
                    }),
                }
            }
        }
    };
}

closed_set! {
    /// How an action ended (HOW it went). Default `success`.
    Outcome, "outcome", default = Success, {
        /// It worked.
        Success => "success",
        /// It was attempted and failed.
        Failure => "failure",
        /// It was refused by policy or authorisation.
        Denied => "denied",
        /// The outcome is not known (yet).
        Unknown => "unknown",
    }
}

closed_set! {
    /// What kind of actor did it (WHO). Default `service`.
    ActorKind, "actor_kind", default = Service, {
        /// A human user.
        User => "user",
        /// A service acting on its own account.
        Service => "service",
        /// A scheduled job.
        Schedule => "schedule",
        /// An automated agent (an LLM tool call, a bot).
        Agent => "agent",
    }
}

closed_set! {
    /// Through which channel the change came in (HOW). Default `sdk`.
    Method, "method", default = Sdk, {
        /// An HTTP request.
        Http => "http",
        /// An MQTT message.
        Mqtt => "mqtt",
        /// A command line.
        Cli => "cli",
        /// A scheduler run.
        Scheduler => "scheduler",
        /// A user interface action.
        Ui => "ui",
        /// An agent's tool call.
        AgentTool => "agent_tool",
        /// A direct library call.
        Sdk => "sdk",
        /// A gRPC call.
        Grpc => "grpc",
        /// A NATS message.
        Nats => "nats",
        /// An AMQP message.
        Amqp => "amqp",
        /// A Kafka record.
        Kafka => "kafka",
    }
}

closed_set! {
    /// How much an event matters. Default `info`.
    Severity, "severity", default = Info, {
        /// Diagnostic detail.
        Debug => "debug",
        /// A normal change.
        Info => "info",
        /// Something worth a look.
        Warn => "warn",
        /// A failure.
        Error => "error",
        /// A failure that needs someone now.
        Critical => "critical",
    }
}

closed_set! {
    /// How long an event's detail is kept. Default `medium`.
    RetentionClass, "retention_class", default = Medium, {
        /// 30 days; forced for codes whose detail holds personal data.
        Short => "short",
        /// 180 days.
        Medium => "medium",
        /// Three years.
        Long => "long",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_value() {
        for s in Method::VALUES {
            assert_eq!(s.parse::<Method>().unwrap().to_string(), *s);
        }
        for s in Outcome::VALUES {
            assert_eq!(s.parse::<Outcome>().unwrap().as_str(), *s);
        }
        assert_eq!(ActorKind::default(), ActorKind::Service);
        assert_eq!(Method::default(), Method::Sdk);
        assert_eq!(RetentionClass::default(), RetentionClass::Medium);
    }

    #[test]
    fn rejects_unknown_value_naming_the_field() {
        let err = "admin".parse::<ActorKind>().unwrap_err();
        insta::assert_snapshot!(err, @r#"invalid actor_kind "admin": expected one of user, service, schedule, agent"#);
    }
}
