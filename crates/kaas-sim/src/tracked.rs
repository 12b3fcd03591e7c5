//! A map that remembers, for each key a mutation touched, what it held before: so that
//! a mutation can be written as the records it changed, and undone when that write
//! fails, without copying the whole state. It also keeps secondary indexes up to date
//! on every change.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Secondary indexes over a [`Tracked`] map, told of every record that comes and goes.
pub(crate) trait Indexer<V>: Default {
    fn add(&mut self, key: &str, value: &V);
    fn remove(&mut self, key: &str, value: &V);
}

/// No secondary index.
#[derive(Debug, Clone, Default)]
pub(crate) struct NoIndex;

impl<V> Indexer<V> for NoIndex {
    fn add(&mut self, _: &str, _: &V) {}
    fn remove(&mut self, _: &str, _: &V) {}
}

/// A map by string key whose changes since the last [`Tracked::commit`] can be listed
/// ([`Tracked::changes`]) or undone ([`Tracked::rollback`]).
#[derive(Clone)]
pub(crate) struct Tracked<V, I = NoIndex> {
    map: BTreeMap<String, V>,
    index: I,
    /// What each key touched since the last commit held before (`None`: absent).
    undo: BTreeMap<String, Option<V>>,
}

impl<V, I: Default> Default for Tracked<V, I> {
    fn default() -> Self {
        Self {
            map: BTreeMap::new(),
            index: I::default(),
            undo: BTreeMap::new(),
        }
    }
}

impl<V: Clone + PartialEq, I: Indexer<V>> Tracked<V, I> {
    /// A map holding `map`, with nothing to undo.
    pub fn from_map(map: BTreeMap<String, V>) -> Self {
        let mut index = I::default();
        for (key, value) in &map {
            index.add(key, value);
        }
        Self {
            map,
            index,
            undo: BTreeMap::new(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        self.map.get(key)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.map.values()
    }

    pub fn index(&self) -> &I {
        &self.index
    }

    /// Whether the indexes are what they would be if built afresh from the entries.
    #[cfg(test)]
    pub fn index_is_consistent(&self) -> bool
    where
        I: PartialEq,
    {
        Self::from_map(self.map.clone()).index == self.index
    }

    fn remember(&mut self, key: &str) {
        if !self.undo.contains_key(key) {
            self.undo.insert(key.to_owned(), self.map.get(key).cloned());
        }
    }

    /// Puts `value` at `key`; what was there before.
    pub fn insert(&mut self, key: String, value: V) -> Option<V> {
        self.remember(&key);
        if let Some(old) = self.map.get(&key) {
            self.index.remove(&key, old);
        }
        self.index.add(&key, &value);
        self.map.insert(key, value)
    }

    pub fn remove(&mut self, key: &str) -> Option<V> {
        if !self.map.contains_key(key) {
            return None;
        }
        self.remember(key);
        let old = self.map.remove(key)?;
        self.index.remove(key, &old);
        Some(old)
    }

    /// Applies `f` to the value at `key`, if there is one.
    pub fn modify<R>(&mut self, key: &str, f: impl FnOnce(&mut V) -> R) -> Option<R> {
        if !self.map.contains_key(key) {
            return None;
        }
        self.remember(key);
        let value = self.map.get_mut(key)?;
        self.index.remove(key, value);
        let result = f(value);
        self.index.add(key, value);
        Some(result)
    }

    /// Keeps only the entries for which `keep` holds.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &V) -> bool) {
        let doomed: Vec<String> = self
            .map
            .iter()
            .filter(|(k, v)| !keep(k, v))
            .map(|(k, _)| k.clone())
            .collect();
        for key in doomed {
            self.remove(&key);
        }
    }

    /// The keys changed since the last commit, with what they hold now (`None`: gone).
    pub fn changes(&self) -> BTreeMap<String, Option<V>> {
        self.undo
            .iter()
            .filter(|(key, before)| self.map.get(key.as_str()) != before.as_ref())
            .map(|(key, _)| (key.clone(), self.map.get(key).cloned()))
            .collect()
    }

    /// Keeps the changes made since the last commit.
    pub fn commit(&mut self) {
        self.undo.clear();
    }

    /// Undoes the changes made since the last commit.
    pub fn rollback(&mut self) {
        for (key, before) in std::mem::take(&mut self.undo) {
            if let Some(now) = self.map.remove(&key) {
                self.index.remove(&key, &now);
            }
            if let Some(before) = before {
                self.index.add(&key, &before);
                self.map.insert(key, before);
            }
        }
    }
}

#[cfg(test)]
impl<V: Clone + PartialEq, I: Indexer<V>> std::ops::Index<&str> for Tracked<V, I> {
    type Output = V;

    fn index(&self, key: &str) -> &V {
        match self.map.get(key) {
            Some(value) => value,
            None => panic!("no entry {key}"),
        }
    }
}

/// Equal when they hold the same entries (indexes and undo records aside).
impl<V: PartialEq, I> PartialEq for Tracked<V, I> {
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map
    }
}

impl<V: fmt::Debug, I> fmt::Debug for Tracked<V, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.map.fmt(f)
    }
}

/// Serialized as the plain map.
impl<V: Serialize, I> Serialize for Tracked<V, I> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.map.serialize(serializer)
    }
}

impl<'de, V, I> Deserialize<'de> for Tracked<V, I>
where
    V: Deserialize<'de> + Clone + PartialEq,
    I: Indexer<V>,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::deserialize(deserializer).map(Self::from_map)
    }
}
