//! The one error type of the crate and its classification.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::wire::wire_enum;

/// Longest body kept in an error, in bytes; longer bodies are cut (at a character boundary).
const MAX_KEPT_BODY: usize = 8 * 1024;

/// Everything that can go wrong when calling Vipps.
///
/// * [`Error::Transport`] / [`Error::Timeout`]: no (complete) response was received.
/// * [`Error::Authentication`]: Vipps refused the credentials or the token (HTTP 401).
/// * [`Error::Api`]: Vipps answered with an error body it documents (Problem JSON and the
///   other documented error shapes), parsed into a [`Problem`].
/// * [`Error::UnexpectedBody`]: a body that is neither the documented success shape nor a
///   documented error shape (an HTML page from a gateway, an empty body, a missing field);
///   the raw body is kept for the log.
/// * [`Error::InvalidInput`]: the request was refused before sending (e.g. a bad idempotency key).
///
/// Use [`Error::kind`] to branch on the meaning without matching on text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request was refused locally; nothing was sent.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Connection, TLS or protocol failure before a complete response arrived.
    #[error("transport error: {0}")]
    Transport(#[source] reqwest::Error),
    /// An attempt did not complete within its time limit.
    #[error("no complete response within {0:?}")]
    Timeout(Duration),
    /// HTTP 401: bad client id, secret, subscription key or token.
    #[error("authentication failed: {0}")]
    Authentication(Box<Problem>),
    /// A documented Vipps error response.
    #[error("Vipps error: {0}")]
    Api(Box<Problem>),
    /// A response body that could not be understood.
    #[error("unexpected response (HTTP {status}): {reason}")]
    UnexpectedBody {
        /// HTTP status of the response.
        status: u16,
        /// `Content-Type` of the response, if any.
        content_type: Option<String>,
        /// The body as text (lossy UTF-8, cut to 8 KiB).
        body: String,
        /// Why it could not be read.
        reason: String,
    },
}

/// What kind of failure an [`Error`] is, for branching without string matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Refused locally before sending.
    InvalidInput,
    /// Network failure; the operation may or may not have happened (re-read or retry with the same key).
    Transport,
    /// Timed out; the operation may or may not have happened (re-read or retry with the same key).
    Timeout,
    /// Credentials or token refused (401).
    Authentication,
    /// The product or operation is not enabled for this sales unit (403).
    Forbidden,
    /// The sales unit is not configured for this request (ePayment 5010–5100, Recurring
    /// `unsupported-feature`, `invalid-sale-unit`).
    MerchantConfiguration,
    /// The payment, agreement, charge, ledger or webhook does not exist (404, ePayment 5090).
    NotFound,
    /// The idempotency key was already used for a different request (409; ePayment 4010, 4020,
    /// refund 4150; Recurring `idempotency-conflict`).
    IdempotencyConflict,
    /// A payment with this `reference` already exists for the MSN (ePayment 4150 on create).
    ReferenceAlreadyExists,
    /// Other conflicts (409, Recurring `conflict`).
    Conflict,
    /// The request is invalid (400/422 validation errors, ePayment 4xxx, Recurring `validation-error`).
    Validation,
    /// The operation is not allowed in the current state or for this amount (ePayment 6xxx,
    /// Recurring `*-failed`): e.g. capture before authorization or more than reserved.
    OperationNotAllowed,
    /// Recurring `charge-due-too-soon`: `due` is before the earliest allowed date.
    ChargeDueTooSoon,
    /// Recurring `charge-due-in-too-long`: `due` is more than 2 years ahead.
    ChargeDueTooLate,
    /// Recurring `charge-amount-too-high`: above the agreement's ceiling.
    ChargeAmountTooHigh,
    /// Recurring `illegal-agreement-update`: e.g. updating a stopped agreement.
    IllegalAgreementUpdate,
    /// Another operation on the same payment is in progress (423, ePayment 6160/6250/6260/6280):
    /// retry shortly with the same key.
    Locked,
    /// Too many requests (429).
    RateLimited,
    /// Vipps failed (5xx, ePayment 3010).
    ServerError,
    /// A success response whose body could not be read.
    UnexpectedBody,
    /// Anything else.
    Other,
}

/// One `extraDetails` entry of a Problem: a field and the rule it broke, or `ErrorCode` and a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraDetail {
    /// Field name, or `ErrorCode`.
    pub name: String,
    /// Violated rule, or the numeric error code.
    pub reason: String,
}

/// A Vipps error response, normalised over the shapes the APIs use (RFC 7807 Problem JSON of
/// ePayment, Recurring, Webhooks and Report; the Azure gateway shape; the Report 401/500 shapes;
/// the token endpoint's OAuth-style shape). Every field except `status` and `raw_body` is optional.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problem {
    /// HTTP status of the response.
    pub status: u16,
    /// `type` URI (Recurring puts the problem identifier in its fragment).
    pub type_uri: Option<String>,
    /// Short summary (`title`, or the gateway's message).
    pub title: Option<String>,
    /// Explanation (`detail`).
    pub detail: Option<String>,
    /// Request path the problem is about (`instance`).
    pub instance: Option<String>,
    /// `traceId` (ePayment, Webhooks), `contextId` (Recurring, Report) or the token endpoint's `trace_id`.
    pub trace_id: Option<String>,
    /// `extraDetails` entries.
    pub extra_details: Vec<ExtraDetail>,
    /// The documented error code: ePayment `ErrorCode` (e.g. `6090`), the Recurring problem
    /// identifier (e.g. `charge-due-too-soon`), the Report `errorCode`/`code`, or the token `error`.
    pub code: Option<String>,
    /// `Retry-After` of the response, if present.
    pub retry_after: Option<Duration>,
    /// The body as received (lossy UTF-8, cut to 8 KiB), for the log.
    pub raw_body: String,
    kind: ErrorKind,
}

impl Problem {
    /// The classification of this problem.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The ePayment error code, if this is an ePayment problem with an `ErrorCode`.
    pub fn epayment_code(&self) -> Option<EpaymentErrorCode> {
        let code = self.extra_details.iter().find(|d| d.name.eq_ignore_ascii_case("ErrorCode"))?;
        code.reason.trim().parse::<u32>().ok().map(EpaymentErrorCode::from_code)
    }

    /// The Recurring problem identifier (the fragment of `type`), if any.
    pub fn recurring_problem(&self) -> Option<RecurringProblem> {
        let type_uri = self.type_uri.as_deref()?;
        if !type_uri.contains("recurring-api-problems") {
            return None;
        }
        let (_, fragment) = type_uri.rsplit_once('#')?;
        Some(RecurringProblem::from(fragment))
    }

    pub(crate) fn set_kind(&mut self, kind: ErrorKind) {
        self.kind = kind;
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        if let Some(code) = &self.code {
            write!(f, " [{code}]")?;
        }
        if let Some(title) = &self.title {
            write!(f, " {title}")?;
        }
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        if let Some(trace) = &self.trace_id {
            write!(f, " (trace {trace})")?;
        }
        Ok(())
    }
}

/// Declares the numeric ePayment error codes (`extraDetails[].reason` when `name` is `ErrorCode`).
macro_rules! code_enum {
    ($( $(#[$m:meta])* $variant:ident = $code:literal, )*) => {
        /// An ePayment error code (Vipps documentation, "errors"). Unknown codes are kept in `Unknown`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EpaymentErrorCode {
            $( $(#[$m])* $variant, )*
            /// A code not documented when this crate was written.
            Unknown(u32),
        }

        impl EpaymentErrorCode {
            /// Maps a numeric code to its variant.
            pub fn from_code(code: u32) -> Self {
                match code {
                    $( $code => Self::$variant, )*
                    other => Self::Unknown(other),
                }
            }

            /// The numeric code.
            pub fn code(self) -> u32 {
                match self {
                    $( Self::$variant => $code, )*
                    Self::Unknown(other) => other,
                }
            }
        }
    };
}

code_enum! {
    /// 3010 internal error.
    InternalError = 3010,
    /// 4010 capture idempotency conflict.
    CaptureIdempotencyConflict = 4010,
    /// 4020 idempotency key already exists.
    IdempotencyKeyAlreadyExists = 4020,
    /// 4040 invalid amount.
    InvalidAmount = 4040,
    /// 4050 invalid customer token.
    InvalidCustomerToken = 4050,
    /// 4060 invalid personal QR.
    InvalidPersonalQr = 4060,
    /// 4070 invalid phone number.
    InvalidPhoneNumber = 4070,
    /// 4080 invalid scope.
    InvalidScope = 4080,
    /// 4090 invalid URL.
    InvalidUrl = 4090,
    /// 4100 too many metadata entries.
    MetadataCapacity = 4100,
    /// 4110 duplicate metadata keys.
    MetadataDuplicateKeys = 4110,
    /// 4120 metadata key too long.
    MetadataKeyLength = 4120,
    /// 4130 metadata value too long.
    MetadataValueLength = 4130,
    /// 4140 missing required parameter.
    MissingRequiredParameter = 4140,
    /// 4150 reference already exists (create) / refund idempotency conflict.
    ReferenceExists = 4150,
    /// 4160 invalid payment method type.
    InvalidPaymentMethodType = 4160,
    /// 5010 blocking sources not allowed.
    BlockingSourcesNotAllowed = 5010,
    /// 5020 express not allowed.
    ExpressNotAllowed = 5020,
    /// 5030 illegal scope.
    IllegalScope = 5030,
    /// 5040 invalid currency for this merchant.
    InvalidCurrencyForMerchant = 5040,
    /// 5050 long-living payments not allowed.
    LongLivingNotAllowed = 5050,
    /// 5060 bank account not verified.
    BankAccountNotVerified = 5060,
    /// 5070 payment cannot be created.
    PaymentCannotBeCreated = 5070,
    /// 5080 PUSH_MESSAGE not allowed.
    PushMessageNotAllowed = 5080,
    /// 5090 reference not found.
    ReferenceNotFound = 5090,
    /// 5100 refund not possible.
    RefundNotPossible = 5100,
    /// 6010 amount too small.
    AmountTooSmall = 6010,
    /// 6020 refund before reservation.
    RefundBeforeReservation = 6020,
    /// 6030 cancel period expired.
    CancelPeriodExpired = 6030,
    /// 6040 cannot cancel a captured payment.
    CannotCancelCaptured = 6040,
    /// 6050 cannot cancel a payment that is not reserved.
    CannotCancelNonReserved = 6050,
    /// 6060 cannot cancel an authorized payment with `cancelTransactionOnly`.
    CannotCancelAuthorized = 6060,
    /// 6070 cannot capture a cancelled payment.
    CannotCaptureCancelled = 6070,
    /// 6080 capture before reservation.
    CaptureBeforeReservation = 6080,
    /// 6090 capture amount too high.
    CaptureAmountTooHigh = 6090,
    /// 6100 capture period expired.
    CapturePeriodExpired = 6100,
    /// 6110 `expiresAt` too late.
    ExpiresAtTooLate = 6110,
    /// 6120 `expiresAt` too soon.
    ExpiresAtTooSoon = 6120,
    /// 6130 long-living payment requires a receipt.
    LongLivingRequiresReceipt = 6130,
    /// 6140 must capture the full amount.
    MustCaptureFullAmount = 6140,
    /// 6150 not enough refundable.
    NotEnoughRefundable = 6150,
    /// 6160 order processing (retry).
    OrderProcessing = 6160,
    /// 6170 already captured.
    AlreadyCaptured = 6170,
    /// 6180 already refunded.
    AlreadyRefunded = 6180,
    /// 6190 cannot be cancelled in this state.
    CannotBeCancelled = 6190,
    /// 6200 cannot be captured in this state.
    CannotBeCaptured = 6200,
    /// 6210 cannot be refunded in this state.
    CannotBeRefunded = 6210,
    /// 6220 refund period expired.
    RefundPeriodExpired = 6220,
    /// 6230 already reserved.
    AlreadyReserved = 6230,
    /// 6250 cannot cancel a payment being processed (retry).
    CannotCancelProcessing = 6250,
    /// 6260 funds unavailable (retry).
    FundsUnavailable = 6260,
    /// 6280 capture failed (retry).
    CaptureFailed = 6280,
    /// 7010 customer not found.
    CustomerNotFound = 7010,
    /// 10010 test approve failed.
    TestApproveFailed = 10010,
    /// 10020 test approve not allowed.
    TestApproveNotAllowed = 10020,
    /// 10030 identification required.
    TestIdentificationRequired = 10030,
    /// 10040 invalid payment source.
    TestInvalidPaymentSource = 10040,
    /// 10050 no cards.
    TestNoCards = 10050,
    /// 10060 operation not supported.
    TestOperationNotSupported = 10060,
    /// 10070 payment limit exceeded.
    TestPaymentLimitExceeded = 10070,
}

wire_enum! {
    /// A Recurring API problem identifier (the fragment of the problem `type` URI).
    pub enum RecurringProblem {
        /// `validation-error`.
        ValidationError => "validation-error",
        /// `invalid-agreement-id`.
        InvalidAgreementId => "invalid-agreement-id",
        /// `invalid-json`.
        InvalidJson => "invalid-json",
        /// `unsupported-media-type`.
        UnsupportedMediaType => "unsupported-media-type",
        /// `not-authorized`.
        NotAuthorized => "not-authorized",
        /// `idempotency-key-header`: the key is missing or invalid.
        IdempotencyKeyHeader => "idempotency-key-header",
        /// `charge-amount-too-high`.
        ChargeAmountTooHigh => "charge-amount-too-high",
        /// `charge-due-too-soon`.
        ChargeDueTooSoon => "charge-due-too-soon",
        /// `charge-due-in-too-long`.
        ChargeDueInTooLong => "charge-due-in-too-long",
        /// `unsupported-feature`.
        UnsupportedFeature => "unsupported-feature",
        /// `illegal-agreement-update`.
        IllegalAgreementUpdate => "illegal-agreement-update",
        /// `invalid-suggested-max-amount`.
        InvalidSuggestedMaxAmount => "invalid-suggested-max-amount",
        /// `cancel-charge-failed`.
        CancelChargeFailed => "cancel-charge-failed",
        /// `charge-creation-failed`.
        ChargeCreationFailed => "charge-creation-failed",
        /// `charge-capture-failed`.
        ChargeCaptureFailed => "charge-capture-failed",
        /// `missing-request-header`.
        MissingRequestHeader => "missing-request-header",
        /// `invalid-sale-unit`.
        InvalidSaleUnit => "invalid-sale-unit",
        /// `resource-not-found`.
        ResourceNotFound => "resource-not-found",
        /// `operation-failed`.
        OperationFailed => "operation-failed",
        /// `conflict`.
        Conflict => "conflict",
        /// `idempotency-conflict`.
        IdempotencyConflict => "idempotency-conflict",
    }
}

impl Error {
    /// The classification of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidInput(_) => ErrorKind::InvalidInput,
            Self::Transport(_) => ErrorKind::Transport,
            Self::Timeout(_) => ErrorKind::Timeout,
            Self::Authentication(_) => ErrorKind::Authentication,
            Self::Api(problem) => problem.kind,
            Self::UnexpectedBody { status, .. } if (200..300).contains(status) => ErrorKind::UnexpectedBody,
            Self::UnexpectedBody { status, .. } => kind_from_status(*status),
        }
    }

    /// The HTTP status, if a response was received.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Authentication(p) | Self::Api(p) => Some(p.status),
            Self::UnexpectedBody { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The parsed error body, if Vipps sent a documented error shape.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Self::Authentication(p) | Self::Api(p) => Some(p),
            _ => None,
        }
    }

    /// True when retrying with the same idempotency key may succeed: network failures, timeouts,
    /// 5xx, 429 and 423 (and the ePayment "processing" codes).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::Transport
                | ErrorKind::Timeout
                | ErrorKind::ServerError
                | ErrorKind::RateLimited
                | ErrorKind::Locked
        )
    }
}

fn kind_from_status(status: u16) -> ErrorKind {
    match status {
        400 | 422 => ErrorKind::Validation,
        401 => ErrorKind::Authentication,
        403 => ErrorKind::Forbidden,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        423 => ErrorKind::Locked,
        429 => ErrorKind::RateLimited,
        500..=599 => ErrorKind::ServerError,
        _ => ErrorKind::Other,
    }
}

fn kind_from_epayment_code(code: EpaymentErrorCode) -> ErrorKind {
    use EpaymentErrorCode as C;
    match code {
        C::InternalError => ErrorKind::ServerError,
        C::CaptureIdempotencyConflict | C::IdempotencyKeyAlreadyExists => ErrorKind::IdempotencyConflict,
        C::ReferenceExists => ErrorKind::ReferenceAlreadyExists,
        C::ReferenceNotFound => ErrorKind::NotFound,
        C::OrderProcessing | C::CannotCancelProcessing | C::FundsUnavailable | C::CaptureFailed => ErrorKind::Locked,
        C::Unknown(n) => match n {
            4000..=4999 => ErrorKind::Validation,
            5000..=5999 => ErrorKind::MerchantConfiguration,
            6000..=6999 => ErrorKind::OperationNotAllowed,
            _ => ErrorKind::Other,
        },
        other => match other.code() {
            4000..=4999 | 7000..=7999 => ErrorKind::Validation,
            5000..=5999 => ErrorKind::MerchantConfiguration,
            6000..=6999 => ErrorKind::OperationNotAllowed,
            _ => ErrorKind::Other,
        },
    }
}

fn kind_from_recurring(problem: &RecurringProblem) -> Option<ErrorKind> {
    use RecurringProblem as P;
    Some(match problem {
        P::IdempotencyConflict => ErrorKind::IdempotencyConflict,
        P::ChargeDueTooSoon => ErrorKind::ChargeDueTooSoon,
        P::ChargeDueInTooLong => ErrorKind::ChargeDueTooLate,
        P::ChargeAmountTooHigh => ErrorKind::ChargeAmountTooHigh,
        P::IllegalAgreementUpdate => ErrorKind::IllegalAgreementUpdate,
        P::ValidationError
        | P::InvalidJson
        | P::UnsupportedMediaType
        | P::IdempotencyKeyHeader
        | P::MissingRequestHeader
        | P::InvalidSuggestedMaxAmount => ErrorKind::Validation,
        P::NotAuthorized => ErrorKind::Forbidden,
        P::InvalidAgreementId | P::ResourceNotFound => ErrorKind::NotFound,
        P::Conflict => ErrorKind::Conflict,
        P::CancelChargeFailed | P::ChargeCreationFailed | P::ChargeCaptureFailed | P::OperationFailed => {
            ErrorKind::OperationNotAllowed
        }
        P::UnsupportedFeature | P::InvalidSaleUnit => ErrorKind::MerchantConfiguration,
        P::Unknown(_) => return None,
    })
}

/// Keeps at most [`MAX_KEPT_BODY`] bytes of a body as text.
pub(crate) fn body_text(body: &[u8]) -> String {
    let cut = &body[..body.len().min(MAX_KEPT_BODY)];
    let mut text = String::from_utf8_lossy(cut).into_owned();
    if body.len() > MAX_KEPT_BODY {
        text.push_str("…[truncated]");
    }
    text
}

fn str_field(obj: &Map<String, Value>, names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| match obj.get(*name) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

/// Builds the error for a non-success response.
pub(crate) fn from_response(
    status: u16,
    content_type: Option<&str>,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Error {
    match parse_problem(status, retry_after, body) {
        Some(problem) if status == 401 => Error::Authentication(Box::new(problem)),
        Some(problem) => Error::Api(Box::new(problem)),
        None if status == 401 => Error::Authentication(Box::new(Problem {
            status,
            type_uri: None,
            title: None,
            detail: None,
            instance: None,
            trace_id: None,
            extra_details: Vec::new(),
            code: None,
            retry_after,
            raw_body: body_text(body),
            kind: ErrorKind::Authentication,
        })),
        None => Error::UnexpectedBody {
            status,
            content_type: content_type.map(str::to_owned),
            body: body_text(body),
            reason: if body.is_empty() {
                "empty error body".to_owned()
            } else {
                "error body is not a documented Vipps error shape".to_owned()
            },
        },
    }
}

/// Reads any documented error shape; `None` when the body is not one of them.
pub(crate) fn parse_problem(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Option<Problem> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let obj = value.as_object()?;

    let mut extra_details = Vec::new();
    if let Some(Value::Array(items)) = obj.get("extraDetails") {
        for item in items {
            if let Some(item) = item.as_object() {
                extra_details.push(ExtraDetail {
                    name: str_field(item, &["name"]).unwrap_or_default(),
                    reason: str_field(item, &["reason"]).unwrap_or_default(),
                });
            }
        }
    }
    // Azure API Management: {"responseInfo":{"responseCode":401,"responseMessage":"..."},"result":{"message":"..."}}
    let azure_title =
        obj.get("responseInfo").and_then(Value::as_object).and_then(|info| str_field(info, &["responseMessage"]));
    let azure_detail = obj.get("result").and_then(Value::as_object).and_then(|r| str_field(r, &["message"]));

    let type_uri = str_field(obj, &["type"]);
    let title = str_field(obj, &["title", "errorMessage", "error"]).or(azure_title);
    let detail = str_field(obj, &["detail", "message", "error_description"]).or(azure_detail);
    let instance = str_field(obj, &["instance"]);
    let trace_id = str_field(obj, &["traceId", "contextId", "trace_id", "correlation_id"]);

    let mut problem = Problem {
        status,
        type_uri,
        title,
        detail,
        instance,
        trace_id,
        extra_details,
        code: None,
        retry_after,
        raw_body: body_text(body),
        kind: kind_from_status(status),
    };
    let known_shape = problem.type_uri.is_some()
        || problem.title.is_some()
        || problem.detail.is_some()
        || !problem.extra_details.is_empty()
        || obj.contains_key("errorCode")
        || obj.contains_key("code");
    if !known_shape {
        return None;
    }

    if let Some(code) = problem.epayment_code() {
        problem.code = Some(code.code().to_string());
        problem.kind = kind_from_epayment_code(code);
    } else if let Some(recurring) = problem.recurring_problem() {
        problem.code = Some(recurring.as_str().to_owned());
        if let Some(kind) = kind_from_recurring(&recurring) {
            problem.kind = kind;
        }
    } else {
        problem.code = str_field(obj, &["errorCode", "code", "error"]);
    }
    if status == 401 {
        problem.kind = ErrorKind::Authentication;
    } else if status == 409 && problem.kind == ErrorKind::Validation {
        problem.kind = ErrorKind::Conflict;
    }
    Some(problem)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_epayment_problem_exposes_its_error_code_and_trace_id() {
        let body = br#"{
          "type": "https://httpstatuses.io/400",
          "title": "Cannot capture before reservation",
          "detail": "The amount you tried to capture is not reserved.",
          "instance": "/v1/payments/577531734343670112/capture",
          "status": 400,
          "extraDetails": [ { "name": "ErrorCode", "reason": "6080" } ],
          "traceId": "00-813b63975adcaaeef2b0ec7c103c40e3-706492e906541d31-01"
        }"#;
        let err = from_response(400, Some("application/problem+json"), None, body);
        assert_eq!(err.kind(), ErrorKind::OperationNotAllowed);
        let p = err.problem().unwrap();
        assert_eq!(p.epayment_code(), Some(EpaymentErrorCode::CaptureBeforeReservation));
        assert_eq!(p.code.as_deref(), Some("6080"));
        assert_eq!(p.trace_id.as_deref(), Some("00-813b63975adcaaeef2b0ec7c103c40e3-706492e906541d31-01"));
        assert_eq!(p.title.as_deref(), Some("Cannot capture before reservation"));
    }

    #[test]
    fn epayment_codes_map_to_the_kinds_a_caller_branches_on() {
        let cases = [
            (409, "4150", ErrorKind::ReferenceAlreadyExists),
            (409, "4020", ErrorKind::IdempotencyConflict),
            (409, "4010", ErrorKind::IdempotencyConflict),
            (404, "5090", ErrorKind::NotFound),
            (400, "6090", ErrorKind::OperationNotAllowed),
            (400, "6160", ErrorKind::Locked),
            (400, "4040", ErrorKind::Validation),
            (400, "5040", ErrorKind::MerchantConfiguration),
            (400, "6999", ErrorKind::OperationNotAllowed),
        ];
        for (status, code, kind) in cases {
            let body = format!(
                r#"{{"type":"x","title":"t","status":{status},"traceId":"t","extraDetails":[{{"name":"ErrorCode","reason":"{code}"}}]}}"#
            );
            let err = from_response(status, None, None, body.as_bytes());
            assert_eq!(err.kind(), kind, "code {code}");
        }
    }

    #[test]
    fn recurring_problem_identifiers_map_to_kinds() {
        let cases = [
            ("charge-due-too-soon", ErrorKind::ChargeDueTooSoon),
            ("charge-due-in-too-long", ErrorKind::ChargeDueTooLate),
            ("idempotency-conflict", ErrorKind::IdempotencyConflict),
            ("charge-amount-too-high", ErrorKind::ChargeAmountTooHigh),
            ("illegal-agreement-update", ErrorKind::IllegalAgreementUpdate),
            ("resource-not-found", ErrorKind::NotFound),
            ("something-new", ErrorKind::Validation),
        ];
        for (id, kind) in cases {
            let body = format!(
                r#"{{"type":"https://developer.vippsmobilepay.com/docs/APIs/recurring-api/recurring-api-problems#{id}","title":"Bad Request","status":400,"detail":"d","instance":"/v3/agreements","contextId":"f70b8bf7-c843-4bea-95d9-94725b19895f"}}"#
            );
            let err = from_response(400, None, None, body.as_bytes());
            assert_eq!(err.kind(), kind, "problem {id}");
            let p = err.problem().unwrap();
            assert_eq!(p.code.as_deref(), Some(id));
            assert_eq!(p.trace_id.as_deref(), Some("f70b8bf7-c843-4bea-95d9-94725b19895f"));
        }
    }

    #[test]
    fn gateway_and_report_error_shapes_are_understood() {
        let azure = br#"{"responseInfo":{"responseCode":401,"responseMessage":"Access denied"},"result":{"message":"Invalid subscription key"}}"#;
        let err = from_response(401, None, None, azure);
        assert!(matches!(err, Error::Authentication(_)));
        assert_eq!(err.problem().unwrap().title.as_deref(), Some("Access denied"));

        let report500 = br#"{"errorCode":100001,"errorMessage":"Something failed","contextId":"c0ffee"}"#;
        let err = from_response(500, None, None, report500);
        assert_eq!(err.kind(), ErrorKind::ServerError);
        let p = err.problem().unwrap();
        assert_eq!(p.code.as_deref(), Some("100001"));
        assert_eq!(p.trace_id.as_deref(), Some("c0ffee"));

        let token = br#"{"error":"invalid_client","error_description":"AADSTS7000215","error_codes":[7000215],"trace_id":"abc"}"#;
        let err = from_response(401, None, None, token);
        assert_eq!(err.kind(), ErrorKind::Authentication);
        assert_eq!(err.problem().unwrap().code.as_deref(), Some("invalid_client"));
    }

    #[test]
    fn html_empty_and_unknown_json_error_bodies_are_kept_raw() {
        let html = b"<html><body><h1>502 Bad Gateway</h1></body></html>";
        let err = from_response(502, Some("text/html"), None, html);
        match &err {
            Error::UnexpectedBody { status, body, content_type, .. } => {
                assert_eq!(*status, 502);
                assert!(body.contains("502 Bad Gateway"));
                assert_eq!(content_type.as_deref(), Some("text/html"));
            }
            other => panic!("expected UnexpectedBody, got {other:?}"),
        }
        assert_eq!(err.kind(), ErrorKind::ServerError);
        assert!(err.is_retryable());

        let err = from_response(429, None, None, b"");
        assert_eq!(err.kind(), ErrorKind::RateLimited);
        let err = from_response(418, None, None, br#"{"unrelated": [1,2,3]}"#);
        assert!(matches!(err, Error::UnexpectedBody { .. }));
        assert_eq!(err.kind(), ErrorKind::Other);
        let err = from_response(401, None, None, b"");
        assert_eq!(err.kind(), ErrorKind::Authentication);
        let err = from_response(400, None, None, br#"[1,2]"#);
        assert!(matches!(err, Error::UnexpectedBody { .. }));
    }

    #[test]
    fn huge_error_bodies_are_cut() {
        let body = vec![b'x'; 100_000];
        let err = from_response(500, None, None, &body);
        match err {
            Error::UnexpectedBody { body, .. } => assert!(body.len() < 9000),
            other => panic!("unexpected {other:?}"),
        }
        // Multi-byte characters at the cut never panic.
        let body = "ø".repeat(10_000);
        let _ = from_response(500, None, None, body.as_bytes());
    }

    #[test]
    fn random_and_mutated_error_bodies_never_panic() {
        use rand::Rng;
        let seeds: [&[u8]; 4] = [
            br#"{"type":"https://httpstatuses.io/400","title":"t","status":400,"traceId":"x","extraDetails":[{"name":"ErrorCode","reason":"6080"}]}"#,
            br#"{"type":"https://developer.vippsmobilepay.com/docs/APIs/recurring-api/recurring-api-problems#conflict","contextId":"c"}"#,
            br#"{"responseInfo":{"responseCode":401,"responseMessage":"m"},"result":{"message":"x"}}"#,
            br#"{"errorCode":100001,"errorMessage":"e","contextId":"c","extraDetails":[1,{"name":null},{"reason":4294967296}]}"#,
        ];
        let mut rng = rand::thread_rng();
        for _ in 0..5000 {
            let mut body = seeds[rng.gen_range(0..seeds.len())].to_vec();
            for _ in 0..rng.gen_range(0..6) {
                let i = rng.gen_range(0..body.len());
                body[i] = rng.gen();
            }
            if rng.gen_bool(0.2) {
                body.truncate(rng.gen_range(0..body.len()));
            }
            let status = rng.gen_range(100..600);
            let err = from_response(status, Some("application/json"), None, &body);
            let _ = (err.kind(), err.to_string(), err.status(), err.is_retryable());
            if let Some(p) = err.problem() {
                let _ = (p.epayment_code(), p.recurring_problem(), p.to_string());
            }
        }
    }
}
