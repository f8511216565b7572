"""An OFD package in memory: an ordered map of entry name -> bytes, and its zip form.

The writer builds one, the signer adds entries to it, the safe reader returns one.
Entry names are package paths without the leading "/" (``Doc_0/Document.xml``).
Zipping is deterministic (fixed entry order and timestamps) so the same licence
and time give the same bytes.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from datetime import datetime

OFD_NS = "http://www.ofdspec.org/2016"
OFD = "{%s}" % OFD_NS  # Clark-notation prefix for lxml
NSMAP = {"ofd": OFD_NS}

# Entries that are already compressed (images) or small binary DER: deflating them costs
# ~0.5 ms per licence for < 1 % size, and inflating them costs every verification again.
_STORED = (".jpg", ".jpeg", ".png", ".gif", ".esl", ".dat")

# zip stores local time at 2-second resolution from 1980 on.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass
class Package:
    files: dict[str, bytes] = field(default_factory=dict)
    # Timestamp written into every zip entry; None = 1980-01-01 (fully reproducible).
    timestamp: datetime | None = None

    def __contains__(self, name: str) -> bool:
        return name.lstrip("/") in self.files

    def __getitem__(self, name: str) -> bytes:
        return self.files[name.lstrip("/")]

    def __setitem__(self, name: str, data: bytes) -> None:
        self.files[name.lstrip("/")] = bytes(data)

    def names(self) -> list[str]:
        return list(self.files)

    def copy(self) -> "Package":
        return Package(dict(self.files), self.timestamp)

    def to_bytes(self, compresslevel: int = 6) -> bytes:
        ts = self.timestamp
        date_time = _ZIP_EPOCH if ts is None else (max(ts.year, 1980), ts.month, ts.day, ts.hour, ts.minute, ts.second)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=compresslevel) as zf:
            for name, data in self.files.items():
                info = zipfile.ZipInfo(name, date_time=date_time)
                method = zipfile.ZIP_STORED if name.lower().endswith(_STORED) else zipfile.ZIP_DEFLATED
                info.compress_type = method
                info.external_attr = 0o644 << 16
                zf.writestr(info, data, compress_type=method, compresslevel=compresslevel)
        return buf.getvalue()
