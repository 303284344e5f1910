// Package ews decodes EWS XML (the EWS-SimpleMessage bodies that T-Pot's
// ewsposter posts) into peba.Events, and encodes the answer ewsposter
// expects.
//
// Decode is a pure function: bytes in, a *Batch or an error wrapping
// ErrMalformed, ErrDTD or ErrTooManyAlerts out. It parses like PEBA 1.x's
// PUT service (reference peba.md §4.3-§4.11) and fixes its crashes and data
// loss (§11.1 B-2, B-3, B-8, B-36, B-40, B-41, B-44); every deviation is
// listed in docs/ews-decoder.md.
//
// Hardening: any DOCTYPE/<!...> declaration is refused (ErrDTD); invalid
// UTF-8, characters XML forbids, undefined entities and non-UTF-8 encoding
// declarations are ErrMalformed; the number of alerts, the length of every
// text field and the size of kept payload bytes are bounded by Options.
//
// Event IDs are content hashes (see eventID): identical alerts within a body
// stay distinct, and a body that ewsposter re-sends from its spool (pretty
// printed) yields the same IDs, so the store can de-duplicate resends.
package ews
