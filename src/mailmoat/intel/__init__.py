"""Threat indicators (domains, URLs, senders, IPs, file hashes) loaded from files, indexed for matching."""

from mailmoat.intel.index import IntelIndex
from mailmoat.intel.loaders import Indicator, LoadError, load_file

__all__ = ["Indicator", "IntelIndex", "LoadError", "load_file"]
