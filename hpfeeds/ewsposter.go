package hpfeeds

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/ews"
)

// ewsposter publishes to hpfeeds either one EWS <Alert> per message (without
// Authentication) or, with hpfformat=json, that XML converted by xmltodict
// ("@attr" keys for attributes, "#text" for text; ewsposter.md §4). Its
// channel name is configurable, so the format is recognised by content.
// Both forms are decoded by package ews, so an alert means the same thing
// whether it was POSTed or published.

const (
	maxXMLDepth = 16      // xmltodict of an Alert is 3 levels deep
	maxXMLBytes = 4 << 20 // converted XML; arrays repeat tag names, so bound the blow-up
)

var xmlName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,63}$`)

var errNotEWS = errors.New("not an EWS alert")

// normalizeEWS decodes ewsposter's output. It returns nil, nil when the
// payload is not in either ewsposter form.
func normalizeEWS(payload []byte, now time.Time) ([]peba.Event, error) {
	p := bytes.TrimLeft(payload, " \t\r\n")
	var body []byte
	switch {
	case bytes.HasPrefix(p, []byte("<")):
		if !bytes.Contains(p, []byte("<Alert")) {
			return nil, nil
		}
		if bytes.HasPrefix(p, []byte("<?xml")) {
			end := bytes.Index(p, []byte("?>"))
			if end < 0 {
				return nil, fmt.Errorf("cannot decode EWS alert: unterminated XML declaration: %w", ErrInvalid)
			}
			p = p[end+2:]
		}
		// Alerts are found at any depth (ews.Decode), so a synthetic root
		// makes a lone <Alert> a document. Authentication inside the payload
		// is then not a child of the root and is ignored, as it should be:
		// hpfeeds authenticated the publisher already.
		body = append(append([]byte("<EWS-SimpleMessage>"), p...), "</EWS-SimpleMessage>"...)
	case bytes.HasPrefix(p, []byte("{")):
		var err error
		if body, err = xmltodictToXML(p); errors.Is(err, errNotEWS) {
			return nil, nil
		} else if err != nil {
			return nil, err
		}
	default:
		return nil, nil
	}
	b, err := ews.Decode(body, ews.Options{MaxAlerts: 100})
	if err != nil {
		return nil, fmt.Errorf("cannot decode EWS alert: %w", err)
	}
	if len(b.Events) == 0 {
		reason := "no Alert"
		if len(b.Skipped) > 0 {
			reason = b.Skipped[0].Reason
		}
		return nil, fmt.Errorf("cannot decode EWS alert: %s: %w", reason, ErrInvalid)
	}
	for i := range b.Events {
		if b.Events[i].CreateTime.IsZero() {
			b.Events[i].CreateTime = now
		}
	}
	return b.Events, nil
}

// xmltodictToXML converts xmltodict JSON back to XML under a synthetic
// root. The object is either {"Alert": {...}} (or {"EWS-SimpleMessage":
// {...}}) or the alert's content itself; anything else is errNotEWS.
func xmltodictToXML(p []byte) ([]byte, error) {
	o, ok := parseObject(p)
	if !ok {
		return nil, errNotEWS
	}
	var w bytes.Buffer
	w.WriteString("<EWS-SimpleMessage>")
	switch {
	case o.m["Alert"] != nil || o.m["EWS-SimpleMessage"] != nil:
		for _, k := range o.keys {
			if err := writeElem(&w, k, o.m[k], 0); err != nil {
				return nil, err
			}
		}
	case o.m["Analyzer"] != nil && (o.m["Source"] != nil || o.m["CreateTime"] != nil):
		if err := writeElem(&w, "Alert", p, 0); err != nil {
			return nil, err
		}
	default:
		return nil, errNotEWS
	}
	w.WriteString("</EWS-SimpleMessage>")
	return w.Bytes(), nil
}

// writeElem writes raw as element name the way xmltodict.unparse would:
// arrays repeat the element, objects carry "@attr" attributes, "#text" text
// and child elements in key order, null is an empty element.
func writeElem(w *bytes.Buffer, name string, raw json.RawMessage, depth int) error {
	if depth > maxXMLDepth || w.Len() > maxXMLBytes {
		return fmt.Errorf("cannot convert xmltodict JSON: too deep or too large: %w", ErrInvalid)
	}
	if !xmlName.MatchString(name) {
		return fmt.Errorf("cannot convert xmltodict JSON: %q is not an element name: %w", clip(name, 64), ErrInvalid)
	}
	if len(raw) == 0 {
		return fmt.Errorf("cannot convert xmltodict JSON: empty value: %w", ErrInvalid)
	}
	switch raw[0] {
	case '[':
		var a []json.RawMessage
		if err := json.Unmarshal(raw, &a); err != nil {
			return fmt.Errorf("cannot convert xmltodict JSON: %w", ErrInvalid)
		}
		for _, el := range a {
			if err := writeElem(w, name, el, depth+1); err != nil {
				return err
			}
		}
		return nil
	case 'n':
		fmt.Fprintf(w, "<%s/>", name)
		return nil
	case '{':
		o, ok := parseObject(raw)
		if !ok {
			return fmt.Errorf("cannot convert xmltodict JSON: %w", ErrInvalid)
		}
		w.WriteString("<" + name)
		for _, k := range o.keys {
			if len(k) < 2 || k[0] != '@' {
				continue
			}
			if !xmlName.MatchString(k[1:]) {
				return fmt.Errorf("cannot convert xmltodict JSON: %q is not an attribute name: %w", clip(k, 64), ErrInvalid)
			}
			w.WriteString(" " + k[1:] + `="`)
			xml.EscapeText(w, []byte(rawString(o.m[k])))
			w.WriteString(`"`)
		}
		w.WriteString(">")
		for _, k := range o.keys {
			if k == "#text" {
				xml.EscapeText(w, []byte(rawString(o.m[k])))
			} else if len(k) > 0 && k[0] != '@' {
				if err := writeElem(w, k, o.m[k], depth+1); err != nil {
					return err
				}
			}
		}
		w.WriteString("</" + name + ">")
		return nil
	default:
		w.WriteString("<" + name + ">")
		xml.EscapeText(w, []byte(rawString(raw)))
		w.WriteString("</" + name + ">")
		return nil
	}
}
