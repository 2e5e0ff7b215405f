package evidence

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"io"
	"sort"

	"github.com/rotation-agent/rotation-agent/events"
)

// maxLine bounds one exported record (the evidence stream's records are far smaller).
const maxLine = 64 << 20

// Break is the first link of an exported set that does not verify.
type Break struct {
	// Line is the 1-based line of the record in the export.
	Line     int    `json:"line"`
	RecordID string `json:"record_id,omitempty"`
	Agent    string `json:"agent,omitempty"`
	Sequence uint64 `json:"sequence,omitempty"`
	Reason   string `json:"reason"`
}

// Chain summarises the records of one agent in a verified set.
type Chain struct {
	Agent string `json:"agent"`
	// First and Last are the chain sequences of the first and last record in the set; a set
	// that does not start at 1 starts after records the export does not hold (older than its
	// time window, or past the stream's retention).
	First   uint64 `json:"first"`
	Last    uint64 `json:"last"`
	Records int    `json:"records"`
}

// KeyUse counts the records one key version signed.
type KeyUse struct {
	KeyID      string `json:"key_id"`
	KeyVersion int    `json:"key_version"`
	Records    int    `json:"records"`
}

// Report is the result of verifying an exported set.
type Report struct {
	// OK is true when every record decodes canonically, carries a valid signature of a key in
	// the keyring, and links to the previous record of its agent.
	OK      bool `json:"ok"`
	Records int  `json:"records"`
	// Duplicates counts byte-identical copies of a record (a re-publish after the stream's
	// duplicate window); they are skipped.
	Duplicates int      `json:"duplicates"`
	Chains     []Chain  `json:"chains"`
	Keys       []KeyUse `json:"keys"`
	Broken     *Break   `json:"broken,omitempty"`
}

// Verify reads JSON Lines of evidence records (as `evidence export` writes them) and checks,
// record by record: strict canonical decoding, the Ed25519 signature against keys, and the
// hash chain of each agent. It stops at the first broken link and names it.
func Verify(r io.Reader, keys Keyring) (Report, error) {
	rep := Report{}
	type head struct {
		seq  uint64
		hash string
		line int
		c    *Chain
	}
	heads := map[string]*head{}
	uses := map[string]*KeyUse{}
	var chains []*Chain
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), maxLine)
	lineNo := 0
	fail := func(b Break) (Report, error) {
		rep.Broken = &b
		rep.Chains, rep.Keys = summarise(chains, uses)
		return rep, nil
	}
	for sc.Scan() {
		lineNo++
		line := sc.Bytes()
		if len(line) == 0 {
			return fail(Break{Line: lineNo, Reason: "empty line"})
		}
		rec, err := events.DecodeRecord(line)
		if err != nil {
			return fail(Break{Line: lineNo, Reason: err.Error()})
		}
		b := Break{Line: lineNo, RecordID: rec.ID, Agent: rec.Data.Agent.ID}
		if rec.Data.Chain != nil {
			b.Sequence = rec.Data.Chain.Sequence
		}
		if err := checkSignature(rec, keys); err != nil {
			b.Reason = err.Error()
			return fail(b)
		}
		link := rec.Data.Chain
		if link == nil {
			b.Reason = "record is not chained"
			return fail(b)
		}
		hash := events.RecordHash(line)
		h := heads[rec.Data.Agent.ID]
		switch {
		case h != nil && hash == h.hash:
			rep.Duplicates++
			continue
		case h == nil && link.Sequence == 1 && link.PreviousSHA256 != events.GenesisHash:
			b.Reason = "the first record of the chain does not start from the genesis hash"
			return fail(b)
		case h == nil:
			c := &Chain{Agent: rec.Data.Agent.ID, First: link.Sequence}
			chains = append(chains, c)
			h = &head{c: c}
			heads[rec.Data.Agent.ID] = h
		case link.Sequence != h.seq+1:
			b.Reason = fmt.Sprintf("chain sequence %d follows %d (line %d): records are missing or out of order", link.Sequence, h.seq, h.line)
			return fail(b)
		case link.PreviousSHA256 != h.hash:
			b.Reason = fmt.Sprintf("previous_sha256 does not match the agent's record at line %d (sequence %d)", h.line, h.seq)
			return fail(b)
		}
		h.seq, h.hash, h.line = link.Sequence, hash, lineNo
		h.c.Last = link.Sequence
		h.c.Records++
		rep.Records++
		sig := rec.Data.Signature
		k := fmt.Sprintf("%s\x00%d", sig.KeyID, sig.KeyVersion)
		if uses[k] == nil {
			uses[k] = &KeyUse{KeyID: sig.KeyID, KeyVersion: sig.KeyVersion}
		}
		uses[k].Records++
	}
	if err := sc.Err(); err != nil {
		return rep, fmt.Errorf("read export: %w", err)
	}
	rep.OK = true
	rep.Chains, rep.Keys = summarise(chains, uses)
	return rep, nil
}

func summarise(chains []*Chain, uses map[string]*KeyUse) ([]Chain, []KeyUse) {
	outChains := make([]Chain, 0, len(chains))
	for _, c := range chains {
		outChains = append(outChains, *c)
	}
	outKeys := make([]KeyUse, 0, len(uses))
	for _, u := range uses {
		outKeys = append(outKeys, *u)
	}
	sort.Slice(outKeys, func(i, j int) bool {
		if outKeys[i].KeyID != outKeys[j].KeyID {
			return outKeys[i].KeyID < outKeys[j].KeyID
		}
		return outKeys[i].KeyVersion < outKeys[j].KeyVersion
	})
	return outChains, outKeys
}

// checkSignature verifies the record's signature with the keyring.
func checkSignature(rec events.Record, keys Keyring) error {
	sig := rec.Data.Signature
	if sig == nil {
		return errNoSignature
	}
	if sig.Algorithm != events.SignatureAlgorithm {
		return fmt.Errorf("signature algorithm %q is not %s", sig.Algorithm, events.SignatureAlgorithm)
	}
	pub, err := keys.lookup(sig.KeyID, sig.KeyVersion)
	if err != nil {
		return err
	}
	value, err := base64.StdEncoding.Strict().DecodeString(sig.Value)
	if err != nil || len(value) != ed25519.SignatureSize {
		return fmt.Errorf("signature value is not %d bytes of base64", ed25519.SignatureSize)
	}
	msg, err := events.SigningBytes(rec)
	if err != nil {
		return err
	}
	if !ed25519.Verify(pub, msg, value) {
		return fmt.Errorf("signature by %s version %d does not match the record", sig.KeyID, sig.KeyVersion)
	}
	return nil
}

// Seal signs rec (with its chain link already set) and returns it with its signature and its
// canonical bytes. A nil signer leaves the record unsigned.
func Seal(ctxSign func(msg []byte) (events.Signature, error), rec events.Record) (events.Record, []byte, error) {
	rec.Data.Signature = nil
	if ctxSign != nil {
		msg, err := events.SigningBytes(rec)
		if err != nil {
			return rec, nil, err
		}
		sig, err := ctxSign(msg)
		if err != nil {
			return rec, nil, err
		}
		rec.Data.Signature = &sig
	}
	line, err := events.Canonical(rec)
	if err != nil {
		return rec, nil, err
	}
	if bytes.ContainsRune(line, '\n') {
		return rec, nil, fmt.Errorf("record %s does not encode to one line", rec.ID)
	}
	return rec, line, nil
}
