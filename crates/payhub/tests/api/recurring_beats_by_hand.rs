//! An operator runs the recurring beats by hand, from the command line (`payhub heartbeat list|run`) and from
//! the admin API (`POST /admin/api/beats/{beat}/run`), and handles recurring payments and agreements from the
//! command line; bad input is refused with a message and changes nothing, and only admins may run beats.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::cli::{payhub_of, run_beside};
use crate::helpers::recurring::{active_recurring, installments, recurring_intent, today};
use crate::helpers::vipps::{charge_ids_at_vipps, sim_client};
use crate::on_both_backends;

on_both_backends! {
    async fn the_cli_runs_and_lists_beats_and_cancels_agreements(app) {
        let vipps = app.with_vipps().await;
        let client = sim_client(&vipps);
        let (_, recurring_id, mandate_id, agreement_id) =
            active_recurring(&app, &vipps, &recurring_intent(today(&app), "120")).await;

        let (code, out, err) = run_beside(payhub_of(&app, &["heartbeat", "list"])).await;
        assert_eq!(code, 0, "{err}");
        for beat in ["recurring.collect", "recurring.generate_installments", "vipps.sync_recurring", "vipps.sync_payments"] {
            let line = out.lines().find(|l| l.starts_with(beat)).unwrap_or_else(|| panic!("{beat} in {out}"));
            assert!(line.contains("never run"), "{line}");
        }

        // Every beat, run now: each prints its outcome; the collect beat charges the installment.
        let (code, out, err) = run_beside(payhub_of(&app, &["heartbeat", "run"])).await;
        assert_eq!(code, 0, "{out}\n{err}");
        for beat in ["recurring.collect", "recurring.generate_installments", "vipps.sync_recurring", "vipps.sync_payments", "vipps.register_webhooks"] {
            let line = out.lines().find(|l| l.starts_with(beat)).unwrap_or_else(|| panic!("{beat} in {out}"));
            assert!(line.contains("succeeded"), "{line}");
        }
        assert_eq!(installments(&app, &vipps, &recurring_id).await[0]["Status"], "Pending");
        assert_eq!(charge_ids_at_vipps(&vipps, &agreement_id).await.len(), 1);
        let (code, out, _) = run_beside(payhub_of(&app, &["heartbeat", "list"])).await;
        assert_eq!(code, 0);
        let line = out.lines().find(|l| l.starts_with("recurring.collect")).unwrap();
        assert!(line.contains("succeeded"), "{line}");
        // One beat by name; an unknown name is an error.
        let (code, out, err) = run_beside(payhub_of(&app, &["heartbeat", "run", "recurring.generate_installments"])).await;
        assert_eq!(code, 0, "{err}");
        assert_eq!(out.lines().count(), 1, "{out}");
        let (code, _, err) = run_beside(payhub_of(&app, &["heartbeat", "run", "no.such.beat"])).await;
        assert_ne!(code, 0);
        assert!(err.contains("no.such.beat"), "{err}");

        // Bad input to the recurring commands: refused with a message, nothing changed.
        for (args, needle) in [
            (vec!["recurring", "show", "rp_unknown"], "No such"),
            (vec!["recurring", "change-amount", &recurring_id, "0.50"], "Amount"),
            (vec!["recurring", "change-amount", &recurring_id, "lots"], "amount"),
            (vec!["recurring", "change-day", &recurring_id, "32"], "CollectionDay"),
            (vec!["recurring", "pause", &recurring_id, "--until", "soon"], "--until"),
            (vec!["recurring", "resume", &recurring_id], "not paused"),
        ] {
            let (code, out, err) = run_beside(payhub_of(&app, &args)).await;
            assert_ne!(code, 0, "{args:?}: {out}");
            assert!(err.contains(needle), "{args:?}: {err}");
        }
        let (code, out, err) = run_beside(payhub_of(&app, &["recurring", "show", &recurring_id])).await;
        assert_eq!(code, 0, "{err}");
        let shown: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(shown["Amount"], json!(120.0), "{shown}");
        assert_eq!(shown["Status"], "Active", "{shown}");

        // Cancel Vipps Agreement: unknown ids, missing flags, then the real one.
        let (code, out, _) = run_beside(payhub_of(&app, &["agreements", "cancel", "--agreement-id", "agr_unknown"])).await;
        assert_eq!(code, 1, "{out}");
        let answer: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(answer["IsSuccess"], false);
        assert!(answer["Message"].as_str().unwrap().contains("agr_unknown"), "{answer}");
        let (code, out, _) = run_beside(payhub_of(&app, &["agreements", "cancel", "--mandate-id", &agreement_id])).await;
        assert_eq!(code, 1, "an agreement id is not a mandate id: {out}");
        let (code, _, err) = run_beside(payhub_of(&app, &["agreements", "cancel"])).await;
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("--mandate-id") && err.contains("--agreement-id"), "{err}");
        let (code, _, err) =
            run_beside(payhub_of(&app, &["agreements", "cancel", "--mandate-id", &mandate_id, "--agreement-id", &agreement_id])).await;
        assert_eq!(code, 2, "{err}");
        assert_eq!(app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await["Status"], "Active");

        let (code, out, err) = run_beside(payhub_of(&app, &["agreements", "cancel", "--agreement-id", &agreement_id])).await;
        assert_eq!(code, 0, "{out}\n{err}");
        let answer: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(answer["IsSuccess"], true, "{answer}");
        assert_eq!(app.v2_get(&vipps, &format!("/v2/Mandate/{mandate_id}")).await["Status"], "Cancelled");
        let agreement = client.recurring().get_agreement(&agreement_id).await.unwrap();
        assert_eq!(agreement.status, vipps_client::recurring::AgreementStatus::Stopped);
        let list = installments(&app, &vipps, &recurring_id).await;
        assert!(list.iter().all(|i| i["Status"] == "Cancelled"), "{list:?}");
        // Again: Vipps refuses (already stopped), exit 1 with Vipps' message.
        let (code, out, _) = run_beside(payhub_of(&app, &["agreements", "cancel", "--mandate-id", &mandate_id])).await;
        assert_eq!(code, 1, "{out}");
        let answer: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(answer["IsSuccess"], false, "{answer}");
        assert!(answer["Message"].as_str().is_some_and(|m| !m.is_empty()), "{answer}");
    }
}

// ---------------------------------------------------------------------------------------------------------
// The admin API's beats

on_both_backends! {
    async fn the_admin_api_runs_the_recurring_beats_now_and_shows_their_last_run(app) {
        let vipps = app.with_vipps().await;
        let (_, recurring_id, _, agreement_id) =
            active_recurring(&app, &vipps, &recurring_intent(today(&app), "130")).await;
        for beat in ["recurring.generate_installments", "recurring.collect"] {
            let response = app.admin(Method::POST, &format!("/admin/api/beats/{beat}/run")).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::ACCEPTED, "{beat}");
            let run_id = response.json::<Value>().await.unwrap()["run_id"].as_str().unwrap().to_owned();
            app.state.jobs.run_until_idle().await.unwrap();
            let beats: Value = app.admin(Method::GET, "/admin/api/beats").send().await.unwrap().json().await.unwrap();
            assert!(beats["beats"].as_array().unwrap().iter().any(|b| b["name"] == beat), "{beats}");
            let run = beats["runs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["id"] == run_id.as_str())
                .unwrap_or_else(|| panic!("run {run_id} in {beats}"))
                .clone();
            assert_eq!(run["beat"], beat, "{run}");
            assert_eq!(run["status"], "succeeded", "{run}");
            assert_eq!(run["trigger"], "manual", "{run}");
            assert!(run["started_at"].is_string(), "{run}");
            // The newest run of the beat is this one.
            let newest = beats["runs"].as_array().unwrap().iter().find(|r| r["beat"] == beat).unwrap();
            assert_eq!(newest["id"], run_id.as_str(), "{beats}");
        }
        assert_eq!(installments(&app, &vipps, &recurring_id).await[0]["Status"], "Pending");
        assert_eq!(charge_ids_at_vipps(&vipps, &agreement_id).await.len(), 1);

        // Unknown beat → 404; only admins may run beats.
        let response = app.admin(Method::POST, "/admin/api/beats/no.such.beat/run").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let finance = app.key(payhub::domain::role::Role::Finance).await;
        let response = app.http.post(app.url("/admin/api/beats/recurring.collect/run")).bearer_auth(&finance).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let response = app.http.post(app.url("/admin/api/beats/recurring.collect/run")).bearer_auth(&vipps.integrator_key).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
}
