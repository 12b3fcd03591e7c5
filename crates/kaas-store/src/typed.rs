use async_trait::async_trait;
use kaas_core::Object;

use crate::{Deleted, ListFilter, ListPosition, ObjectKey, Page, Store, StoreError};

/// Typed access to any [`Object`] through a [`Store`].
#[async_trait]
pub trait StoreExt: Store {
    async fn create_obj<T: Object>(&self, tenant: &str, obj: &T) -> Result<T, StoreError> {
        let value = self.create(T::KIND, tenant, to_value(obj)?).await?;
        from_value(value)
    }

    async fn get_obj<T: Object>(&self, tenant: &str, name: &str) -> Result<Option<T>, StoreError> {
        match self
            .get_text(&ObjectKey::new(T::KIND, tenant, name))
            .await?
        {
            Some(text) => from_text(&text).map(Some),
            None => Ok(None),
        }
    }

    async fn list_obj<T: Object>(&self, filter: &ListFilter) -> Result<Vec<T>, StoreError> {
        self.list_text(T::KIND, filter)
            .await?
            .iter()
            .map(|text| from_text(text))
            .collect()
    }

    /// One page of at most `limit` objects (`None`: every object) that `filter`
    /// selects after `filter.after`, with where the next page starts when more follow.
    async fn list_page<T: Object>(
        &self,
        filter: &ListFilter,
        limit: Option<u32>,
    ) -> Result<Page<T>, StoreError> {
        // One more than asked for says whether more follow.
        let filter = ListFilter {
            limit: limit.map(|l| l.saturating_add(1)),
            ..filter.clone()
        };
        let mut items: Vec<T> = self.list_obj(&filter).await?;
        let more = limit.is_some_and(|l| items.len() > l as usize);
        if let Some(l) = limit {
            items.truncate(l as usize);
        }
        let next = items.last().filter(|_| more).map(|last| ListPosition {
            tenant: last.meta().tenant.clone(),
            name: last.meta().name.clone(),
        });
        Ok(Page { items, next })
    }

    /// See [`Store::update`]; `None` when the update removed the object.
    async fn update_obj<T: Object>(&self, obj: &T) -> Result<Option<T>, StoreError> {
        let key = ObjectKey::new(T::KIND, &obj.meta().tenant, &obj.meta().name);
        match self.update(&key, to_value(obj)?).await? {
            Some(v) => from_value(v).map(Some),
            None => Ok(None),
        }
    }

    /// See [`Store::delete`]; `Some` when the object was only marked.
    async fn delete_obj<T: Object>(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.delete(&ObjectKey::new(T::KIND, tenant, name)).await? {
            Deleted::Removed => Ok(None),
            Deleted::Marked(v) => from_value(v).map(Some),
        }
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

fn to_value<T: Object>(obj: &T) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(obj)
        .map_err(|e| StoreError::Invalid(format!("cannot encode {}: {e}", T::KIND)))
}

/// Straight from the stored text: a `Value` in between would double the work.
fn from_text<T: Object>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Invalid(format!("cannot decode stored {}: {e}", T::KIND)))
}

fn from_value<T: Object>(value: serde_json::Value) -> Result<T, StoreError> {
    serde_json::from_value(value)
        .map_err(|e| StoreError::Invalid(format!("cannot decode stored {}: {e}", T::KIND)))
}
