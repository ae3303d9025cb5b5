//! The one writer of the pseudonyms handed to sites: each is derived from the ledger secret
//! and remembered, so that the VO can resolve the one a site reports.

use std::sync::Arc;

use tokenledger_core::ids::{PersonId, Pseudonym, Site, Vo};
use tokenledger_core::pseudonym::LedgerSecret;

use crate::clock::Clock;
use crate::store::{Registry, StoreError};

/// Derives and remembers pseudonyms.
#[derive(Clone)]
pub struct Pseudonyms {
    secret: Arc<LedgerSecret>,
    registry: Arc<dyn Registry>,
    clock: Arc<dyn Clock>,
}

impl Pseudonyms {
    pub fn new(
        secret: LedgerSecret,
        registry: Arc<dyn Registry>,
        clock: Arc<dyn Clock>,
    ) -> Pseudonyms {
        Pseudonyms {
            secret: Arc::new(secret),
            registry,
            clock,
        }
    }

    /// The ledger secret, root of site keys and pseudonyms.
    pub fn secret(&self) -> &LedgerSecret {
        &self.secret
    }

    /// The pseudonym of `person` of `vo` at `site`, as shown to one who knows it already.
    pub fn of(&self, site: &Site, vo: &Vo, person: &PersonId) -> Pseudonym {
        Pseudonym::unchecked(self.secret.pseudonym(site, vo, person))
    }

    /// The pseudonym of `person` of `vo` at `site`, remembered before it is handed out.
    pub async fn hand_out(
        &self,
        site: &Site,
        vo: &Vo,
        person: &PersonId,
    ) -> Result<Pseudonym, StoreError> {
        let pseudonym = self.of(site, vo, person);
        self.registry
            .remember_pseudonym(&pseudonym, site, vo, person, self.clock.now_micros())
            .await?;
        Ok(pseudonym)
    }

    /// Remembers `pseudonym`, handed to `site` in a blocklist entry of suspension
    /// `suspension_id` of `vo`, for the person that suspension holds now.
    pub async fn remember_for_suspension(
        &self,
        pseudonym: &Pseudonym,
        site: &Site,
        vo: &Vo,
        suspension_id: &str,
    ) -> Result<(), StoreError> {
        self.registry
            .remember_suspension_pseudonym(
                pseudonym,
                site,
                vo,
                suspension_id,
                self.clock.now_micros(),
            )
            .await
    }
}
