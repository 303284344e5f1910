// Package hpfeeds subscribes to hpfeeds brokers and turns channel payloads
// into peba.Events.
//
// protocol.go is the wire protocol (seckc.md §6) as pure, bounded
// encode/decode functions. Client keeps one subscription per configured
// broker alive forever (exponential backoff with jitter, capped at 30 s) and
// reports each broker's state truthfully (State). Normalize maps the
// payloads of the MHN/CHN channels the way Mnemosyne does (seckc.md §7),
// decodes T-Pot ewsposter's hpfeeds output with package ews, and keeps
// messages of unknown channels generically. Delivery semantics, the
// channel table and the ID rule are documented in docs/hpfeeds.md.
package hpfeeds
