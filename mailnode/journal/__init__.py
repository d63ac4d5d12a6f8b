from mailnode.journal.format import JournalDamaged
from mailnode.journal.journal import Committed, Journal, JournalError, Recovery

__all__ = ["Committed", "Journal", "JournalDamaged", "JournalError", "Recovery"]
