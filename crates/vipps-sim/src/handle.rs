//! Payer and test controls on the [`Simulator`] handle, for in-process tests: the same effects
//! as the `/_sim/` HTTP controls, without a round trip.

use anyhow::{anyhow, bail};

use crate::{epayment, recurring, Simulator};

fn payment_error(e: epayment::PayerError) -> anyhow::Error {
    match e {
        epayment::PayerError::NotFound => anyhow!("no such payment"),
        epayment::PayerError::NotPending(s) => anyhow!("the payment is {s}, not CREATED"),
        epayment::PayerError::BadPhone => anyhow!("phone number must be 10 to 15 digits"),
    }
}

fn agreement_error(e: recurring::PayerError) -> anyhow::Error {
    match e {
        recurring::PayerError::NotFound => anyhow!("no such agreement"),
        recurring::PayerError::NotPending(s) => anyhow!("the agreement is {s}"),
        recurring::PayerError::BadPhone => anyhow!("phone number must be 10 to 15 digits"),
    }
}

impl Simulator {
    fn payment_msn(&self, reference: &str) -> anyhow::Result<String> {
        let db = self.sim.lock();
        epayment::find_msn(&db, reference, None).map_err(|r| anyhow!("{}", String::from_utf8_lossy(&r.body)))
    }

    /// Acts as the payer approving the `CREATED` payment `reference` (unique across merchants),
    /// like `POST /_sim/payments/{reference}/approve`. Test magic amounts decline.
    pub async fn approve_payment(&self, reference: &str) -> anyhow::Result<()> {
        let msn = self.payment_msn(reference)?;
        let now = self.sim.clock.now();
        let mut db = self.sim.lock();
        if let Some(why) = epayment::declined(&db, &msn, reference) {
            bail!("card declined ({why}); the payment stays CREATED");
        }
        epayment::payer_approve(&mut db, &msn, reference, None, now).map_err(payment_error)
    }

    /// Makes the next `times` captures of payment `reference` fail transiently with `code`
    /// (`6280` or `6260`), like `POST /_sim/payments/{reference}/fail-next-capture`.
    pub async fn fail_next_capture(&self, reference: &str, code: &str, times: u32) -> anyhow::Result<()> {
        let msn = self.payment_msn(reference)?;
        epayment::set_fail_capture(&mut self.sim.lock(), &msn, reference, code, times).map_err(|e| anyhow!(e))
    }

    /// Acts as the payer rejecting the `CREATED` payment `reference`: it becomes `ABORTED`.
    pub async fn reject_payment(&self, reference: &str) -> anyhow::Result<()> {
        let msn = self.payment_msn(reference)?;
        let now = self.sim.clock.now();
        epayment::payer_reject(&mut self.sim.lock(), &msn, reference, now).map_err(payment_error)
    }

    /// Acts as the payer accepting the `PENDING` agreement (its initial charge is processed).
    pub async fn accept_agreement(&self, agreement_id: &str) -> anyhow::Result<()> {
        let now = self.sim.clock.now();
        recurring::payer_accept(&mut self.sim.lock(), agreement_id, None, now).map_err(agreement_error)
    }

    /// Acts as the payer rejecting the `PENDING` agreement: it becomes `STOPPED`.
    pub async fn reject_agreement(&self, agreement_id: &str) -> anyhow::Result<()> {
        let now = self.sim.clock.now();
        recurring::payer_reject(&mut self.sim.lock(), agreement_id, now).map_err(agreement_error)
    }

    /// Acts as the payer stopping the `ACTIVE` agreement in the app (actor `USER`).
    pub async fn stop_agreement(&self, agreement_id: &str) -> anyhow::Result<()> {
        let now = self.sim.clock.now();
        recurring::payer_stop(&mut self.sim.lock(), agreement_id, now).map_err(agreement_error)
    }

    /// Makes the next charge processed on the agreement fail with `reason` (one of
    /// `user_action_required`, `charge_amount_too_high`, `non_technical_error`,
    /// `technical_error`) on its first `attempts` attempts (`None`: every attempt).
    pub async fn fail_next_charge(
        &self,
        agreement_id: &str,
        reason: &str,
        attempts: Option<u32>,
    ) -> anyhow::Result<()> {
        recurring::set_fail_next(&mut self.sim.lock(), agreement_id, reason, attempts).map_err(|e| anyhow!(e))
    }

    /// Makes the next `times` (`None`: 1) charges for the agreement sent in an async batch be accepted and then
    /// dropped: never created, and `recurring.charge-creation-failed.v1` with `reason` (`None`:
    /// `technical_error`) is sent at the next processing tick.
    pub async fn drop_next_batch_charge(
        &self,
        agreement_id: &str,
        reason: Option<&str>,
        times: Option<u32>,
    ) -> anyhow::Result<()> {
        recurring::set_drop_next_batch(&mut self.sim.lock(), agreement_id, reason, times).map_err(|e| anyhow!(e))
    }
}
