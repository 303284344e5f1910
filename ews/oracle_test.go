package ews

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// decodeStdlib is Decode with encoding/xml (RawToken, Strict) as the token
// source: the decoder as it was before xmlscan.go, kept as the oracle of
// FuzzTokenizerMatchesEncodingXML.
func decodeStdlib(body []byte, opt Options) (*Batch, error) {
	p := getParser(body, opt.withDefaults(), false)
	defer p.release()
	if err := p.runStdlib(); err != nil {
		return nil, err
	}
	return p.batch(), nil
}

func xmlName(n xml.Name) []byte {
	if n.Space == "" {
		return []byte(n.Local)
	}
	return []byte(n.Space + ":" + n.Local)
}

func (p *parser) runStdlib() error {
	d := xml.NewDecoder(bytes.NewReader(p.body))
	d.Strict = true
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			return p.finish()
		}
		if err != nil {
			return malformed(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			attrs := make([]xattr, len(t.Attr))
			for i, a := range t.Attr {
				attrs[i] = xattr{name: xmlName(a.Name), value: []byte(a.Value)}
			}
			err = p.start(xmlName(t.Name), attrs)
		case xml.EndElement:
			err = p.end(xmlName(t.Name))
		case xml.CharData:
			err = p.text(t)
		case xml.Directive:
			err = errDTD
		}
		if err != nil {
			return err
		}
	}
}

// stricterThanStdlib are the errors for which the tokenizer deliberately
// refuses what encoding/xml accepts (xmlscan.go).
var stricterThanStdlib = []error{errBadMarkupChar, errSurrogateRef}

// checkSameAsStdlib fails unless Decode and decodeStdlib both fail or give
// deeply equal batches.
func checkSameAsStdlib(t *testing.T, body []byte, opt Options) {
	t.Helper()
	got, err := Decode(body, opt)
	want, wantErr := decodeStdlib(body, opt)
	switch {
	case err != nil && wantErr != nil:
		// Both refuse. Which error comes first may differ (encoding/xml
		// reads a whole <!DOCTYPE> before the decoder sees it).
	case err != nil:
		for _, e := range stricterThanStdlib {
			if errors.Is(err, e) {
				return
			}
		}
		t.Fatalf("tokenizer refuses what encoding/xml accepts: %v", err)
	case wantErr != nil:
		t.Fatalf("tokenizer accepts what encoding/xml refuses: %v", wantErr)
	case !reflect.DeepEqual(got, want):
		t.Fatalf("batches differ:\ntokenizer   %+v\nencoding/xml %+v", got, want)
	}
}

// hostileBodies are XML edge cases for both token sources.
func hostileBodies() []string {
	ok := string(alertBody(okAnalyzer + okTime + okSource))
	alert := func(s string) string { return string(alertBody(okAnalyzer + okTime + okSource + s)) }
	return []string{
		`<!DOCTYPE x [<!ENTITY a "aaaa">]>` + ok,
		`<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><lolz>&lol;</lolz>`,
		strings.Replace(ok, "<username>u", "<username>&xxe;", 1),
		strings.Replace(ok, "<username>u", "<username>\xff\xfe", 1),
		strings.Replace(ok, "<username>u", "<username>\x01", 1),
		strings.Replace(ok, "<username>u", "<username>&#1;", 1),
		`<?xml version="1.0" encoding="ISO-8859-1"?>` + ok,
		`<?xml version="1.0" encoding='utf-8'?>` + ok,
		`<?xml version="1.1"?>` + ok,
		ok[:len(ok)-10], strings.Replace(ok, "</Alert>", "</Alarm>", 1), ok + ok, "", "hello", " \n" + ok + "\n\t",
		alert(`<AdditionalData meaning="a&#10;b&#9;c">x&#13;y&#xD;z` + "\r\n\r" + `</AdditionalData>`),
		alert(`<AdditionalData meaning="a` + "\t\n\r\n" + `b">` + `<![CDATA[<&` + "\r\n" + `]]>]]&gt;</AdditionalData>`),
		alert(`<AdditionalData meaning="x">a]]>b</AdditionalData>`),
		alert(`<AdditionalData meaning="]]>">&#x10FFFF;&#1114112;&#xFFFE;&#0;&#xD800;</AdditionalData>`),
		alert(`<AdditionalData meaning="x">&#X41;&#x;&#;&lt&amp ;</AdditionalData>`),
		alert(`<AdditionalData meaning="x"><!-- c --><?pi x?>a<!-- -- -->b</AdditionalData>`),
		alert(`<AdditionalData meaning="x"><!-- ` + "\xff" + ` -->a</AdditionalData>`),
		alert(`<AdditionalData meaning='a"b' m2="a'b"/><x:y a:b="1" c:d:e="2"/><é ü="1"/><:a b:="c"/>`),
		alert(`<AdditionalData meaning="x" meaning="y"/><Source port="1"protocol="tcp">8.8.8.8</Source>`),
		alert(`<AdditionalData meaning="a<b"/>`), alert(`<a b=c/>`), alert(`<a b/>`), alert(`<1a/>`), alert(`<a/ >`),
		`<a><![CDATA[x]]></a><![CDATA[ ]]>`, `<![CDATA[ ]]><a/>`, `&#32;<a/>`, `<a/><?xml encoding="latin1"?>`,
		`<a>` + "\xef\xbf\xbe" + `</a>`, `<a>` + "\xed\xa0\x80" + `</a>`, `<a b="` + "\xef\xbf\xbd" + `"/>`,
		`<a></a >`, `<a></ a>`, `<a></a b>`, `<a><!--->--></a>`, `<a><!---->a</a>`, `<a><!-x--></a>`, `<a><![CDAT[x]]></a>`,
		`<a><?x?></a>`, `<a><? x?></a>`, `<a><?x`, `<a><!--`, `<a><![CDATA[`, `<`, `<a`, `<a b="1`, `<a>&`, `<a>&#`, `</a>`,
	}
}

func TestTokenizerMatchesEncodingXML(t *testing.T) {
	for _, dir := range []string{"peba-samples", "ewsposter", "ewsposter-resend"} {
		for _, file := range glob(t, dir+"/*.xml") {
			checkSameAsStdlib(t, mustRead(t, file), Options{})
		}
	}
	for _, body := range hostileBodies() {
		t.Run("", func(t *testing.T) { checkSameAsStdlib(t, []byte(body), Options{}) })
	}
}

func TestTokenizerStricter(t *testing.T) {
	for _, tc := range []struct {
		body string
		want error
	}{
		{`<a><!-- ` + "\xff" + ` --></a>`, errBadMarkupChar},
		{`<a><?pi ` + "\x01" + `?></a>`, errBadMarkupChar},
		{`<a>&#xD800;</a>`, errSurrogateRef},
		{`<a b="&#57343;"/>`, errSurrogateRef},
	} {
		if _, err := decodeStdlib([]byte(tc.body), Options{}); err != nil {
			t.Errorf("encoding/xml refuses %q: %v", tc.body, err)
		}
		if _, err := Decode([]byte(tc.body), Options{}); !errors.Is(err, tc.want) || !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v, want %v", tc.body, err, tc.want)
		}
	}
}

func FuzzTokenizerMatchesEncodingXML(f *testing.F) {
	for _, dir := range []string{"peba-samples", "ewsposter", "ewsposter-resend"} {
		files, _ := filepath.Glob(filepath.Join(fixtures, dir, "*.xml"))
		for _, file := range files {
			f.Add(mustRead(f, file))
		}
	}
	for _, body := range hostileBodies() {
		f.Add([]byte(body))
	}
	opt := Options{MaxAlerts: 200, MaxFieldBytes: 256, MaxPayloadBytes: 1024}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkSameAsStdlib(t, body, opt)
	})
}

// TestPooledParserDoesNotAliasResults: parsers are reused (parserPool), so
// a Batch must not share memory that a later Decode overwrites.
func TestPooledParserDoesNotAliasResults(t *testing.T) {
	files := glob(t, "peba-samples/*.xml")
	var kept []*Batch
	for _, file := range files {
		b, _ := Decode(mustRead(t, file), Options{}) // nil on error
		kept = append(kept, b)
	}
	for i, file := range files {
		want, err := decodeStdlib(mustRead(t, file), Options{})
		if err != nil {
			continue
		}
		if !reflect.DeepEqual(kept[i], want) {
			t.Errorf("%s: batch changed after later Decode calls", file)
		}
	}
}
