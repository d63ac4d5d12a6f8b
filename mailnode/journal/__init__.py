from mailnode.journal.format import JournalDamaged
from mailnode.journal.journal import Committed, Journal, JournalError, JournalFenced, Recovery

__all__ = ["Committed", "Journal", "JournalDamaged", "JournalError", "JournalFenced", "Recovery"]
