"""Connectors layer: the FIX tag numbers and names the codec and parsers refer to.

Hand-written (a subset of the FIX repository): only the tags brokerflow reads, plus the
length-prefixed "data" tags the framer must honour. Reasons name a tag as `Name(tag)`.
"""

from __future__ import annotations

NAMES: dict[int, str] = {
    1: "Account",
    6: "AvgPx",
    8: "BeginString",
    9: "BodyLength",
    10: "CheckSum",
    11: "ClOrdID",
    14: "CumQty",
    17: "ExecID",
    18: "ExecInst",
    19: "ExecRefID",
    20: "ExecTransType",
    31: "LastPx",
    32: "LastQty",
    34: "MsgSeqNum",
    35: "MsgType",
    37: "OrderID",
    38: "OrderQty",
    39: "OrdStatus",
    40: "OrdType",
    41: "OrigClOrdID",
    43: "PossDupFlag",
    44: "Price",
    52: "SendingTime",
    54: "Side",
    55: "Symbol",
    58: "Text",
    59: "TimeInForce",
    60: "TransactTime",
    66: "ListID",
    67: "ListSeqNo",
    68: "TotNoOrders",
    73: "NoOrders",
    89: "Signature",
    90: "SecureDataLen",
    91: "SecureData",
    93: "SignatureLength",
    95: "RawDataLength",
    96: "RawData",
    99: "StopPx",
    126: "ExpireTime",
    150: "ExecType",
    151: "LeavesQty",
    211: "PegOffsetValue",
    212: "XmlDataLen",
    213: "XmlData",
    268: "NoMDEntries",
    269: "MDEntryType",
    270: "MDEntryPx",
    271: "MDEntrySize",
    272: "MDEntryDate",
    273: "MDEntryTime",
    278: "MDEntryID",
    279: "MDUpdateAction",
    348: "EncodedIssuerLen",
    349: "EncodedIssuer",
    350: "EncodedSecurityDescLen",
    351: "EncodedSecurityDesc",
    352: "EncodedListExecInstLen",
    353: "EncodedListExecInst",
    354: "EncodedTextLen",
    355: "EncodedText",
    356: "EncodedSubjectLen",
    357: "EncodedSubject",
    358: "EncodedHeadlineLen",
    359: "EncodedHeadline",
    360: "EncodedAllocTextLen",
    361: "EncodedAllocText",
    362: "EncodedUnderlyingIssuerLen",
    363: "EncodedUnderlyingIssuer",
    364: "EncodedUnderlyingSecurityDescLen",
    365: "EncodedUnderlyingSecurityDesc",
    445: "EncodedListStatusTextLen",
    446: "EncodedListStatusText",
    618: "EncodedLegIssuerLen",
    619: "EncodedLegIssuer",
    621: "EncodedLegSecurityDescLen",
    622: "EncodedLegSecurityDesc",
    836: "PegOffsetType",
    880: "TrdMatchID",
    1385: "ContingencyType",
}

# Length field -> the data field it measures. A data value may contain SOH, so the framer
# takes exactly that many bytes (FIX "Length" + "data" types).
DATA_LENGTH_TAGS: dict[int, int] = {
    90: 91,
    93: 89,
    95: 96,
    212: 213,
    348: 349,
    350: 351,
    352: 353,
    354: 355,
    356: 357,
    358: 359,
    360: 361,
    362: 363,
    364: 365,
    445: 446,
    618: 619,
    621: 622,
}

DATA_TAGS: dict[int, int] = {data: length for length, data in DATA_LENGTH_TAGS.items()}
"""Data field -> the length field that must precede it."""


def label(tag: int) -> str:
    """Return a tag as reasons print it: "Symbol(55)", or "tag 5041" for tags without a name."""
    name = NAMES.get(tag)
    return f"{name}({tag})" if name else f"tag {tag}"
