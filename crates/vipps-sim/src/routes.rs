//! The one router list: every route of the simulator, Vipps APIs first, then `/_sim/` controls.
//! Other modules add their lines here.

use axum::routing::{delete, get, patch, post};
use axum::Router;

use crate::state::SharedSim;
use crate::{auth, controls, epayment, faults, payer, recurring, report, webhooks};

pub(crate) fn router(sim: SharedSim) -> Router {
    Router::new()
        // Access token (reference §2)
        .route("/accesstoken/get", post(auth::access_token))
        // ePayment v1 (reference §3)
        .route("/epayment/v1/payments", post(epayment::create))
        .route("/epayment/v1/payments/{reference}", get(epayment::get_payment))
        .route("/epayment/v1/payments/{reference}/events", get(epayment::events))
        .route("/epayment/v1/payments/{reference}/capture", post(epayment::capture))
        .route("/epayment/v1/payments/{reference}/refund", post(epayment::refund))
        .route("/epayment/v1/payments/{reference}/cancel", post(epayment::cancel))
        .route("/epayment/v1/test/payments/{reference}/approve", post(epayment::force_approve))
        // Webhooks v1 (reference §4)
        .route("/webhooks/v1/webhooks", post(webhooks::register).get(webhooks::list))
        .route("/webhooks/v1/webhooks/{id}", delete(webhooks::delete))
        // Recurring v3 (reference §5)
        .route("/recurring/v3/agreements", post(recurring::draft).get(recurring::list_agreements))
        .route("/recurring/v3/agreements/charges", post(recurring::create_charges_async))
        .route(
            "/recurring/v3/agreements/{agreement_id}",
            get(recurring::get_agreement).patch(recurring::update_agreement),
        )
        .route("/recurring/v3/agreements/{agreement_id}/accept", patch(recurring::force_accept))
        .route(
            "/recurring/v3/agreements/{agreement_id}/charges",
            post(recurring::create_charge).get(recurring::list_charges),
        )
        .route(
            "/recurring/v3/agreements/{agreement_id}/charges/{charge_id}",
            get(recurring::get_charge).delete(recurring::cancel_charge),
        )
        .route("/recurring/v3/agreements/{agreement_id}/charges/{charge_id}/capture", post(recurring::capture_charge))
        .route("/recurring/v3/agreements/{agreement_id}/charges/{charge_id}/refund", post(recurring::refund_charge))
        .route("/recurring/v3/charges/{charge_id}", get(recurring::get_charge_by_id))
        // Report API (reference §6)
        .route("/settlement/v1/ledgers", get(report::ledgers))
        .route("/report/v2/ledgers/{ledger_id}/{topic}/dates/{ledger_date}", get(report::by_date))
        .route("/report/v2/ledgers/{ledger_id}/{topic}/feed", get(report::feed))
        // The payer's phone (landing page of redirectUrl / vippsConfirmationUrl)
        .route("/landing", get(payer::show).post(payer::act))
        // Controls (crate README, "Controls")
        .route(
            "/_sim/vipps-number-payments",
            post(report::sim_vipps_number_payment).get(report::sim_vipps_number_ledgers),
        )
        .route("/_sim/vipps-number-payments/{number}/settlement.csv", get(report::sim_vipps_number_settlement_csv))
        .route("/_sim/report/bulk", post(report::sim_bulk_ledger))
        .route("/_sim/clock", get(controls::get_clock).put(controls::set_clock))
        .route("/_sim/clock/advance", post(controls::advance_clock))
        .route("/_sim/payments/{reference}/{action}", post(epayment::sim_action))
        .route("/_sim/payments/{reference}/fail-next-capture", post(epayment::sim_fail_next_capture))
        .route("/_sim/payments/{reference}/portal-capture", post(epayment::sim_portal_capture))
        .route("/_sim/idempotency", delete(controls::forget_idempotency_keys))
        .route("/_sim/agreements/{agreement_id}/{action}", post(recurring::sim_action))
        .route("/_sim/agreements/{agreement_id}/fail-next-charge", post(recurring::sim_fail_next_charge))
        .route("/_sim/agreements/{agreement_id}/drop-next-batch-charge", post(recurring::sim_drop_next_batch_charge))
        .route(
            "/_sim/agreements/{agreement_id}/charges/{charge_id}/hold-processing",
            post(recurring::sim_hold_processing),
        )
        .route("/_sim/faults", post(faults::add).get(faults::list).delete(faults::clear))
        .route("/_sim/webhooks/deliveries", get(webhooks::sim_deliveries))
        .route("/_sim/webhooks/pause", post(webhooks::sim_pause))
        .route("/_sim/webhooks/resume", post(webhooks::sim_resume))
        .route("/_sim/merchants", get(controls::merchants))
        .fallback(controls::not_found)
        .with_state(sim)
}
