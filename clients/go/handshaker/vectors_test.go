package handshaker

// The record layer against tests/vectors/records.json, the vectors and
// scenarios every client in the repository runs (tests/vectors/gen_records.py
// writes them). A scenario drives a Conn over a scripted transport: the
// peer's bytes are read until they run out, which the transport reports as a
// timeout, and everything the Conn writes is compared byte for byte.

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	pb "github.com/handshaker/handshaker/clients/go/gen/handshaker/v1"
)

type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	b, err := hex.DecodeString(s)
	*h = b
	return err
}

type vectorKeys struct {
	Secret         hexBytes `json:"secret"`
	Key            hexBytes `json:"key"`
	IV             hexBytes `json:"iv"`
	SequenceNumber uint64   `json:"sequence_number"`
}

func (k vectorKeys) proto() *pb.TrafficKeys {
	return &pb.TrafficKeys{Secret: k.Secret, Key: k.Key, Iv: k.IV, SequenceNumber: k.SequenceNumber}
}

type suiteVector struct {
	CipherSuite   uint16   `json:"cipher_suite"`
	Name          string   `json:"name"`
	TrafficSecret hexBytes `json:"traffic_secret"`
	Key           hexBytes `json:"key"`
	IV            hexBytes `json:"iv"`
	KeyUpdates    []struct {
		Secret hexBytes `json:"secret"`
		Key    hexBytes `json:"key"`
		IV     hexBytes `json:"iv"`
	} `json:"key_updates"`
	Records []struct {
		SequenceNumber uint64   `json:"sequence_number"`
		ContentType    uint8    `json:"content_type"`
		Content        hexBytes `json:"content"`
		Padding        int      `json:"padding"`
		Record         hexBytes `json:"record"`
	} `json:"records"`
}

type vectorError struct {
	Alert      uint8 `json:"alert"`
	SentByPeer bool  `json:"sent_by_peer"`
}

type scenarioStep struct {
	Action            string   `json:"action"`
	Data              hexBytes `json:"data"`
	RequestPeerUpdate bool     `json:"request_peer_update"`
	Expect            struct {
		ApplicationData hexBytes     `json:"application_data"`
		CloseNotify     bool         `json:"close_notify"`
		Output          hexBytes     `json:"output"`
		Error           *vectorError `json:"error"`
		Refused         bool         `json:"refused"`
	} `json:"expect"`
}

type scenario struct {
	Name                string         `json:"name"`
	Version             uint32         `json:"version"`
	CipherSuite         uint32         `json:"cipher_suite"`
	Read                vectorKeys     `json:"read"`
	Write               vectorKeys     `json:"write"`
	PeerRecordSizeLimit uint32         `json:"peer_record_size_limit"`
	Steps               []scenarioStep `json:"steps"`
}

// tls12SuiteVector is one TLS 1.2 suite's key, fixed IV and single records.
type tls12SuiteVector struct {
	CipherSuite uint16   `json:"cipher_suite"`
	Name        string   `json:"name"`
	Key         hexBytes `json:"key"`
	IV          hexBytes `json:"iv"`
	Records     []struct {
		SequenceNumber uint64   `json:"sequence_number"`
		ContentType    uint8    `json:"content_type"`
		Content        hexBytes `json:"content"`
		Record         hexBytes `json:"record"`
	} `json:"records"`
}

type recordVectors struct {
	Suites         []suiteVector      `json:"suites"`
	Scenarios      []scenario         `json:"scenarios"`
	TLS12Suites    []tls12SuiteVector `json:"tls12_suites"`
	TLS12Scenarios []scenario         `json:"tls12_scenarios"`
}

// loadRecordVectors reads tests/vectors/records.json from the repository root,
// found by walking up from the package directory.
func loadRecordVectors(t *testing.T) *recordVectors {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "tests", "vectors", "records.json"))
		if err == nil {
			var v recordVectors
			if err := json.Unmarshal(data, &v); err != nil {
				t.Fatalf("records.json: %v", err)
			}
			return &v
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("tests/vectors/records.json not found above the package directory")
		}
		dir = parent
	}
}

func TestRecordVectorsKeysAndKeyUpdateChain(t *testing.T) {
	for _, sv := range loadRecordVectors(t).Suites {
		t.Run(sv.Name, func(t *testing.T) {
			suite := cipherSuiteByID(sv.CipherSuite)
			if suite == nil {
				t.Fatalf("suite %#04x unsupported", sv.CipherSuite)
			}
			key := hkdfExpandLabel(suite.hash, sv.TrafficSecret, "key", nil, suite.keyLen)
			iv := hkdfExpandLabel(suite.hash, sv.TrafficSecret, "iv", nil, nonceLen)
			if !bytes.Equal(key, sv.Key) || !bytes.Equal(iv, sv.IV) {
				t.Fatalf("key %x iv %x, want %x %x", key, iv, sv.Key, sv.IV)
			}
			hc, err := newHalfConn(suite, &pb.TrafficKeys{Secret: sv.TrafficSecret, Key: sv.Key, Iv: sv.IV})
			if err != nil {
				t.Fatal(err)
			}
			for i, next := range sv.KeyUpdates {
				if err := hc.update(); err != nil {
					t.Fatal(err)
				}
				ivNow := hc.iv
				if !bytes.Equal(hc.secret, next.Secret) || !bytes.Equal(ivNow[:], next.IV) {
					t.Fatalf("generation %d: secret %x iv %x, want %x %x", i+1, hc.secret, ivNow, next.Secret, next.IV)
				}
				if got := hkdfExpandLabel(suite.hash, hc.secret, "key", nil, suite.keyLen); !bytes.Equal(got, next.Key) {
					t.Fatalf("generation %d: key %x, want %x", i+1, got, next.Key)
				}
			}
		})
	}
}

func TestRecordVectorsSealAndOpen(t *testing.T) {
	for _, sv := range loadRecordVectors(t).Suites {
		t.Run(sv.Name, func(t *testing.T) {
			suite := cipherSuiteByID(sv.CipherSuite)
			for _, r := range sv.Records {
				keys := &pb.TrafficKeys{Secret: sv.TrafficSecret, Key: sv.Key, Iv: sv.IV, SequenceNumber: r.SequenceNumber}
				if r.Padding == 0 {
					writer, err := newHalfConn(suite, keys)
					if err != nil {
						t.Fatal(err)
					}
					sealed, err := writer.seal(nil, r.ContentType, r.Content)
					if err != nil || !bytes.Equal(sealed, r.Record) {
						t.Fatalf("seq %d: sealed %x, %v; want %x", r.SequenceNumber, sealed, err, r.Record)
					}
				}
				reader, err := newHalfConn(suite, keys)
				if err != nil {
					t.Fatal(err)
				}
				contentType, content, err := reader.open(bytes.Clone(r.Record))
				if err != nil || contentType != r.ContentType || !bytes.Equal(content, r.Content) {
					t.Fatalf("seq %d: opened type %d %x, %v", r.SequenceNumber, contentType, content, err)
				}
			}
		})
	}
}

func TestRecordVectorsScenarios(t *testing.T) {
	for _, sc := range loadRecordVectors(t).Scenarios {
		t.Run(sc.Name, func(t *testing.T) {
			if err := runScenario(sc); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestRecordVectorsTLS12SealAndOpen(t *testing.T) {
	vectors := loadRecordVectors(t).TLS12Suites
	if len(vectors) == 0 {
		t.Fatal("no tls12_suites in records.json")
	}
	for _, sv := range vectors {
		t.Run(sv.Name, func(t *testing.T) {
			suite := tls12SuiteByID(sv.CipherSuite)
			if suite == nil {
				t.Fatalf("suite %#04x unsupported", sv.CipherSuite)
			}
			for _, r := range sv.Records {
				keys := &pb.TrafficKeys{Key: sv.Key, Iv: sv.IV, SequenceNumber: r.SequenceNumber}
				writer, err := newHalfConn12(suite, keys)
				if err != nil {
					t.Fatal(err)
				}
				sealed, err := writer.seal(nil, r.ContentType, r.Content)
				if err != nil || !bytes.Equal(sealed, r.Record) {
					t.Fatalf("seq %d: sealed %x, %v; want %x", r.SequenceNumber, sealed, err, r.Record)
				}
				reader, err := newHalfConn12(suite, keys)
				if err != nil {
					t.Fatal(err)
				}
				contentType, content, err := reader.open(bytes.Clone(r.Record))
				if err != nil || contentType != r.ContentType || !bytes.Equal(content, r.Content) {
					t.Fatalf("seq %d: opened type %d %x, %v", r.SequenceNumber, contentType, content, err)
				}
				if reader.seq != r.SequenceNumber+1 || writer.seq != r.SequenceNumber+1 {
					t.Fatalf("seq %d: sequence numbers %d %d after one record", r.SequenceNumber, writer.seq, reader.seq)
				}
			}
		})
	}
}

func TestRecordVectorsTLS12Scenarios(t *testing.T) {
	scenarios := loadRecordVectors(t).TLS12Scenarios
	if len(scenarios) == 0 {
		t.Fatal("no tls12_scenarios in records.json")
	}
	for _, sc := range scenarios {
		t.Run(sc.Name, func(t *testing.T) {
			if sc.Version != 0x0303 {
				t.Fatalf("version %#04x, want TLS 1.2", sc.Version)
			}
			if err := runScenario(sc); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestRecordVectorsTLS12RunnerCatchesAMismatch(t *testing.T) {
	for _, sc := range loadRecordVectors(t).TLS12Scenarios {
		if sc.Name != "tls12_hello_request_refused" {
			continue
		}
		for i := range sc.Steps {
			if out := sc.Steps[i].Expect.Output; len(out) > 0 {
				sc.Steps[i].Expect.Output = bytes.Clone(out)
				sc.Steps[i].Expect.Output[len(out)-1] ^= 1
				break
			}
		}
		if err := runScenario(sc); err == nil {
			t.Fatal("a flipped output byte went unnoticed")
		}
		return
	}
	t.Fatal("scenario tls12_hello_request_refused is missing")
}

func TestRecordVectorsRunnerCatchesAMismatch(t *testing.T) {
	for _, sc := range loadRecordVectors(t).Scenarios {
		if sc.Name != "key_update_burst_across_reads" {
			continue
		}
		last := &sc.Steps[len(sc.Steps)-1]
		last.Expect.Output = bytes.Clone(last.Expect.Output)
		last.Expect.Output[len(last.Expect.Output)-1] ^= 1
		if err := runScenario(sc); err == nil {
			t.Fatal("a flipped output byte went unnoticed")
		}
		return
	}
	t.Fatal("scenario key_update_burst_across_reads is missing")
}

// runScenario drives a freshly established Conn through the scenario's steps.
func runScenario(sc scenario) error {
	transport := &scriptedTransport{}
	c := &Conn{conn: transport, config: defaultConfig}
	version := sc.Version
	if version == 0 {
		version = 0x0304
	}
	keys := &pb.SessionKeys{
		Version:             version,
		CipherSuite:         sc.CipherSuite,
		Read:                sc.Read.proto(),
		Write:               sc.Write.proto(),
		PeerRecordSizeLimit: sc.PeerRecordSizeLimit,
	}
	if err := c.establish(keys, nil, nil); err != nil {
		return err
	}
	c.handshakeDone.Store(true)
	for i, step := range sc.Steps {
		where := fmt.Sprintf("step %d (%s)", i, step.Action)
		transport.out.Reset()
		var gotErr *vectorError
		var data []byte
		closeNotify, refused := false, false
		switch step.Action {
		case "receive":
			transport.in.Write(step.Data)
			buf := make([]byte, 1<<15)
		read:
			for {
				n, err := c.Read(buf)
				data = append(data, buf[:n]...)
				var alert *AlertError
				var netErr net.Error
				switch {
				case err == nil:
					continue
				case errors.Is(err, io.EOF):
					closeNotify = true
				case errors.As(err, &alert):
					gotErr = &vectorError{alert.Alert, alert.SentByPeer}
				case errors.As(err, &netErr) && netErr.Timeout():
				default:
					return fmt.Errorf("%s: %v", where, err)
				}
				break read
			}
		case "send":
			if _, err := c.Write(step.Data); err != nil {
				refused = true
			}
		case "update_keys":
			// TLS 1.2 refuses, sends nothing and goes on.
			if err := c.UpdateKeys(step.RequestPeerUpdate); err != nil {
				refused = true
			}
		case "close":
			if err := c.CloseWrite(); err != nil {
				return fmt.Errorf("%s: %v", where, err)
			}
		default:
			return fmt.Errorf("%s: unknown action", where)
		}
		want := step.Expect
		if step.Action == "receive" {
			if !bytes.Equal(data, want.ApplicationData) {
				return fmt.Errorf("%s: application data %x, want %x", where, data, want.ApplicationData)
			}
			if closeNotify != want.CloseNotify {
				return fmt.Errorf("%s: close_notify %v, want %v", where, closeNotify, want.CloseNotify)
			}
		}
		if (gotErr == nil) != (want.Error == nil) || (gotErr != nil && *gotErr != *want.Error) {
			return fmt.Errorf("%s: error %+v, want %+v", where, gotErr, want.Error)
		}
		if refused != want.Refused {
			return fmt.Errorf("%s: refused %v, want %v", where, refused, want.Refused)
		}
		if got := transport.out.Bytes(); !bytes.Equal(got, want.Output) {
			return fmt.Errorf("%s: wrote\n%x\nwant\n%x", where, got, want.Output)
		}
		if want.Error != nil {
			return nil
		}
	}
	return nil
}

// scriptedTransport is a net.Conn whose reads return what the test queued
// and then time out, and whose writes are kept.
type scriptedTransport struct {
	in, out bytes.Buffer
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "no more scripted input" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func (s *scriptedTransport) Read(b []byte) (int, error) {
	if s.in.Len() == 0 {
		return 0, timeoutError{}
	}
	return s.in.Read(b)
}

func (s *scriptedTransport) Write(b []byte) (int, error) { return s.out.Write(b) }
func (s *scriptedTransport) Close() error                { return nil }
func (s *scriptedTransport) LocalAddr() net.Addr         { return &net.TCPAddr{} }
func (s *scriptedTransport) RemoteAddr() net.Addr        { return &net.TCPAddr{} }
func (s *scriptedTransport) SetDeadline(time.Time) error { return nil }
func (s *scriptedTransport) SetReadDeadline(time.Time) error {
	return nil
}
func (s *scriptedTransport) SetWriteDeadline(time.Time) error { return nil }
