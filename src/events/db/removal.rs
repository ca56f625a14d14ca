//! A deleted session's past, on the writer thread: its last event logged and its
//! earlier ones hidden at once (with its outbound rows, health and campaigns), then
//! removed a chunk at a time, with its campaigns' items.

use rusqlite::{params, Transaction};

use super::{campaign_sql, insert, outbound_sql, remove_deleted, signal, trim, Change, NewEvent, Writer, KINDS};
use crate::store::DbError;

impl Writer {
    /// Logs the session's last event and hides its earlier ones, which
    /// [`Writer::remove_deleted`] removes a chunk at a time: never one long delete in
    /// front of every other session's appends. The mark is durable, so a crash
    /// mid-removal leaves them hidden, and the next removal finishes them.
    pub(super) fn delete_session(&mut self, tx: &Transaction<'_>, last: &NewEvent) -> Result<(), DbError> {
        let id = &last.session_id;
        let seq = self.last_seq(tx, id)? + 1;
        // A session created again under this id starts again at 1.
        tx.execute("DELETE FROM session_seq WHERE session_id = ?1", [id])?;
        self.seqs.remove(id);
        self.touched.insert(id.clone());
        let (cursor, size) = insert(tx, last, seq)?.ok_or(rusqlite::Error::StatementChangedRows(0))?;
        tx.prepare_cached(
            "INSERT INTO removals (session_id, through) VALUES (?1, ?2)
             ON CONFLICT(session_id) DO UPDATE SET through = max(through, excluded.through)",
        )?
        .execute(params![id, cursor as i64])?;
        outbound_sql::delete_session(tx, id)?;
        if campaign_sql::delete_session(tx, id)? {
            signal::note(&mut self.changed, id, Change::Control);
        }
        trim::count(tx, id, size as i64)?;
        trim::forget_mark(tx, id)?;
        let mut kinds = [0; KINDS];
        kinds[last.kind() as usize - 1] = 1;
        self.added(cursor, size as i64, kinds);
        Ok(())
    }

    /// Removes up to `chunk` events of deleted sessions; the number removed.
    pub(super) fn remove_deleted(&mut self, tx: &Transaction<'_>, chunk: usize) -> Result<usize, DbError> {
        let (removed, freed) = remove_deleted(tx, chunk)?;
        for (session_id, bytes) in freed {
            trim::count(tx, &session_id, -(bytes as i64))?;
            self.pending_bytes -= bytes as i64;
        }
        // Then the items of deleted sessions' campaigns, in the same bound.
        let items = match chunk.saturating_sub(removed) {
            0 => 0,
            left => campaign_sql::remove_chunk(tx, left)?,
        };
        Ok(removed + items)
    }
}
