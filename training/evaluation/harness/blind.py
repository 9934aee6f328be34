"""Direction-blind events: what is left when a capture cannot say which end is local.

In the stratosphere captures 008 and 011 a flow is malicious exactly when it comes in from the
internet, so anything telling inbound from outbound (Zeek's local_orig/local_resp, the derived
`direction`, private vs public addresses, which end started the flow) gives the label away.
`direction_blind` removes all of it, the same way for a capture's fitting and scored parts:

* `local_orig` and `local_resp` are dropped and `direction` is null
  (`training.features.dropped_fields.without_fields`, as `--drop-field` drops fields);
* each flow is re-oriented by a keyed hash of its two addresses (the end with the smaller hash
  becomes the source): addresses, bytes, packets and IP bytes swap with their ends; the ports
  stay where they are (the service port remains the destination port), and so do `history`
  and `conn_state`, which describe the connection rather than an address;
* every address is replaced by a keyed-hash private address 10.x.y.z (24 bits of a keyed hash
  of the original text: one host keeps one address across captures, and no address says
  whether it is local, public, or which subnet it is in).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.features.dropped_fields import without_fields
from training.kernels.hashing import hash_array

ORIENT_KEY = 0x5EED_0F_D1EC_7104
ADDRESS_KEY = 0x0B11_DADD_2E55_0001
DIRECTION_FIELDS = ("local_orig", "local_resp")
PAIRS = (("source_ip", "dest_ip"), ("bytes_sent", "bytes_received"),
         ("packets_sent", "packets_received"), ("orig_ip_bytes", "resp_ip_bytes"))


def private_addresses(addresses: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Each address as 10.x.y.z from a keyed hash of its text; null stays null."""
    low = hash_array(addresses, key=ADDRESS_KEY) & np.uint64(0xFFFFFF)
    octets = [(low >> np.uint64(shift)) & np.uint64(0xFF) for shift in (16, 8, 0)]
    text = np.char.add("10.", np.char.add(np.char.add(octets[0].astype(str), "."),
                                          np.char.add(np.char.add(octets[1].astype(str), "."),
                                                      octets[2].astype(str))))
    return pa.array(text, pa.string(), mask=np.asarray(pc.is_null(addresses)))


def direction_blind(table: pa.Table) -> pa.Table:
    """`table` without anything that tells inbound from outbound (see the module docstring);
    the input is not changed."""
    # The fields themselves go the way `--drop-field` takes (`features.dropped_fields`).
    table = without_fields(table, ("direction", *DIRECTION_FIELDS))
    swap = pa.array(hash_array(table["source_ip"], key=ORIENT_KEY)
                    > hash_array(table["dest_ip"], key=ORIENT_KEY))
    columns = {}
    for left, right in PAIRS:
        if left in table.column_names and right in table.column_names:
            columns[left] = pc.if_else(swap, table[right], table[left])
            columns[right] = pc.if_else(swap, table[left], table[right])
    for name in ("source_ip", "dest_ip"):
        columns[name] = private_addresses(columns[name])
    for name, values in columns.items():
        table = table.set_column(table.column_names.index(name), name, values)
    return table
