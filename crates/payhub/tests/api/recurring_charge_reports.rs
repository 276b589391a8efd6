//! What a charge's later answers say in the trail: a capture is booked by one Inbound Report; a later answer
//! about the same charge (refunded at Vipps since, say) books nothing new and its report says so.

use crate::helpers::recurring::{
    active_recurring, days_pass, id_of, installment, installments, recurring_intent, today,
};
use crate::helpers::storage;
use crate::helpers::vipps::sim_client;
use crate::on_both_backends;

on_both_backends! {
    async fn a_charge_refunded_outside_payhub_does_not_book_its_capture_again(app) {
        let vipps = app.with_vipps().await;
        let (_, recurring_id, _, agreement_id) = active_recurring(&app, &vipps, &recurring_intent(today(&app), "150")).await;
        app.state.payments.collect_recurring().await.expect("collect");
        days_pass(&app, &vipps, 2).await;
        let first = installments(&app, &vipps, &recurring_id).await[0].clone();
        let charge = first["PaymentReference"].as_str().unwrap_or_default().to_owned();
        let collected = installment(&app, &vipps, id_of(&first)).await;
        assert_eq!(collected["Status"], "Collected", "{collected}");

        // A refund made at Vipps by other means than payhub (the merchant portal, another system).
        let key = vipps_client::RecurringIdempotencyKey::parse(&format!("portal-{charge}")).unwrap();
        sim_client(&vipps)
            .recurring()
            .refund_charge(&agreement_id, &charge, &vipps_client::recurring::ChargeAmount::new(1000, "portal"), &key)
            .await
            .expect("refund at Vipps");
        app.state.payments.sync_charge(&charge, None).await.expect("sync charge");

        let reports = storage::pairs(
            &app,
            "SELECT sub_type, status FROM inbound_reports WHERE reference = $1 AND amount_ore = 15000 ORDER BY created_at",
            &[&charge],
        )
        .await;
        let booked = reports.iter().filter(|(_, status)| status == "Matched").count();
        assert_eq!(booked, 1, "one report books the capture: {reports:?}");
        let noted = storage::text(
            &app,
            "SELECT detail FROM inbound_reports WHERE reference = $1 AND sub_type = 'charge.partially_refunded'",
            &[&charge],
        )
        .await
        .unwrap_or_default();
        assert!(noted.contains("already recorded"), "{noted}");
        let again = installment(&app, &vipps, id_of(&first)).await;
        assert_eq!(again["Payments"].as_array().map(Vec::len), Some(1), "{again}");
    }
}
