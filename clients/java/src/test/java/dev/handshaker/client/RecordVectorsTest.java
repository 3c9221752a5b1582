package dev.handshaker.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.google.protobuf.ByteString;
import dev.handshaker.v1.SessionKeys;
import dev.handshaker.v1.TrafficKeys;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.math.BigInteger;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.opentest4j.AssertionFailedError;

/**
 * The record layer against tests/vectors/records.json, the vectors and scenarios every client in the
 * repository runs (tests/vectors/gen_records.py writes them). A scenario drives a {@link
 * RecordConnection} over a scripted input that times out when the peer's bytes run out, and
 * compares everything it writes byte for byte.
 */
class RecordVectorsTest {
  private static final HexFormat HEX = HexFormat.of();
  private static final Map<String, Object> VECTORS = load();

  @Test
  void trafficKeysAndTheKeyUpdateChain() throws Exception {
    for (Map<String, Object> vector : list(VECTORS.get("suites"))) {
      CipherSuite suite = CipherSuite.fromCodePoint(integer(vector.get("cipher_suite")));
      byte[] secret = hex(vector.get("traffic_secret"));
      assertArrayEquals(hex(vector.get("key")), Hkdf.expandLabel(suite, secret, "key", suite.keyLength()));
      assertArrayEquals(hex(vector.get("iv")), Hkdf.expandLabel(suite, secret, "iv", CipherSuite.IV_LENGTH));
      RecordProtection updated = RecordProtection.fromSecret(suite, secret);
      for (Map<String, Object> generation : list(vector.get("key_updates"))) {
        byte[] next = hex(generation.get("secret"));
        assertArrayEquals(next, Hkdf.expandLabel(suite, secret, "traffic upd", suite.hashLength()));
        assertArrayEquals(hex(generation.get("key")), Hkdf.expandLabel(suite, next, "key", suite.keyLength()));
        assertArrayEquals(hex(generation.get("iv")), Hkdf.expandLabel(suite, next, "iv", CipherSuite.IV_LENGTH));
        // update() lands on the same keys: both seal a record alike.
        updated.update();
        RecordProtection expected =
            RecordProtection.of(suite, next, hex(generation.get("key")), hex(generation.get("iv")), 0);
        byte[] probe = "probe".getBytes(StandardCharsets.UTF_8);
        assertArrayEquals(
            expected.seal(RecordProtection.CONTENT_APPLICATION_DATA, probe, 0, probe.length),
            updated.seal(RecordProtection.CONTENT_APPLICATION_DATA, probe, 0, probe.length));
        updated = RecordProtection.fromSecret(suite, next);
        secret = next;
      }
    }
  }

  @Test
  void singleRecordsSealAndOpen() throws Exception {
    for (Map<String, Object> vector : list(VECTORS.get("suites"))) {
      CipherSuite suite = CipherSuite.fromCodePoint(integer(vector.get("cipher_suite")));
      byte[] secret = hex(vector.get("traffic_secret"));
      byte[] key = hex(vector.get("key"));
      byte[] iv = hex(vector.get("iv"));
      for (Map<String, Object> record : list(vector.get("records"))) {
        long seq = ((BigInteger) record.get("sequence_number")).longValue();
        int contentType = integer(record.get("content_type"));
        byte[] content = hex(record.get("content"));
        byte[] wire = hex(record.get("record"));
        String where = vector.get("name") + " seq " + record.get("sequence_number");
        if (integer(record.get("padding")) == 0) {
          RecordProtection writer = RecordProtection.of(suite, secret, key, iv, seq);
          assertArrayEquals(wire, writer.seal(contentType, content, 0, content.length), where);
        }
        RecordProtection.Opened opened = RecordProtection.of(suite, secret, key, iv, seq).open(wire, 0, wire.length);
        assertEquals(contentType, opened.contentType(), where);
        assertArrayEquals(content, opened.content(), where);
      }
    }
  }

  @TestFactory
  Stream<DynamicTest> scenarios() {
    return list(VECTORS.get("scenarios")).stream()
        .map(scenario -> DynamicTest.dynamicTest((String) scenario.get("name"), () -> run(scenario)));
  }

  @Test
  void tls12SingleRecordsSealAndOpen() throws Exception {
    List<Map<String, Object>> vectors = list(VECTORS.get("tls12_suites"));
    assertEquals(6, vectors.size());
    for (Map<String, Object> vector : vectors) {
      CipherSuite suite = CipherSuite.fromCodePoint(integer(vector.get("cipher_suite")));
      assertEquals(vector.get("name"), suite.name());
      byte[] key = hex(vector.get("key"));
      byte[] iv = hex(vector.get("iv"));
      for (Map<String, Object> record : list(vector.get("records"))) {
        long seq = ((BigInteger) record.get("sequence_number")).longValue();
        int contentType = integer(record.get("content_type"));
        byte[] content = hex(record.get("content"));
        byte[] wire = hex(record.get("record"));
        String where = vector.get("name") + " seq " + record.get("sequence_number");
        RecordProtection writer = RecordProtection.of(suite, new byte[0], key, iv, seq);
        assertArrayEquals(wire, writer.seal(contentType, content, 0, content.length), where);
        assertEquals(seq + 1, writer.sequenceNumber(), where);
        RecordProtection reader = RecordProtection.of(suite, new byte[0], key, iv, seq);
        RecordProtection.Opened opened = reader.open(wire, 0, wire.length);
        assertEquals(contentType, opened.contentType(), where);
        assertArrayEquals(content, opened.content(), where);
        assertEquals(seq + 1, reader.sequenceNumber(), where);
      }
    }
  }

  @TestFactory
  Stream<DynamicTest> tls12Scenarios() {
    List<Map<String, Object>> scenarios = list(VECTORS.get("tls12_scenarios"));
    assertEquals(false, scenarios.isEmpty());
    return scenarios.stream()
        .map(scenario -> DynamicTest.dynamicTest((String) scenario.get("name"), () -> run(scenario)));
  }

  @Test
  void aDeliberateMismatchInATls12ScenarioFails() {
    Map<String, Object> scenario =
        list(VECTORS.get("tls12_scenarios")).stream()
            .filter(s -> s.get("name").equals("tls12_hello_request_refused"))
            .findFirst()
            .orElseThrow();
    List<Map<String, Object>> steps = new ArrayList<>(list(scenario.get("steps")));
    Map<String, Object> first = new LinkedHashMap<>(steps.get(0));
    Map<String, Object> expect = new LinkedHashMap<>(map(first.get("expect")));
    byte[] output = hex(expect.get("output"));
    output[output.length - 1] ^= 1;
    expect.put("output", HEX.formatHex(output));
    first.put("expect", expect);
    steps.set(0, first);
    Map<String, Object> broken = new LinkedHashMap<>(scenario);
    broken.put("steps", steps);
    assertThrows(AssertionFailedError.class, () -> run(broken));
  }

  @Test
  void aDeliberateMismatchFails() {
    Map<String, Object> scenario =
        list(VECTORS.get("scenarios")).stream()
            .filter(s -> s.get("name").equals("key_update_burst_across_reads"))
            .findFirst()
            .orElseThrow();
    List<Map<String, Object>> steps = new ArrayList<>(list(scenario.get("steps")));
    Map<String, Object> last = new LinkedHashMap<>(steps.get(steps.size() - 1));
    Map<String, Object> expect = new LinkedHashMap<>(map(last.get("expect")));
    byte[] output = hex(expect.get("output"));
    output[output.length - 1] ^= 1;
    expect.put("output", HEX.formatHex(output));
    last.put("expect", expect);
    steps.set(steps.size() - 1, last);
    Map<String, Object> broken = new LinkedHashMap<>(scenario);
    broken.put("steps", steps);
    assertThrows(AssertionFailedError.class, () -> run(broken));
  }

  // ---------------------------------------------------------------- the runner

  private static void run(Map<String, Object> scenario) throws Exception {
    ScriptedInput in = new ScriptedInput();
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    SessionKeys keys =
        SessionKeys.newBuilder()
            .setVersion(scenario.containsKey("version") ? integer(scenario.get("version")) : 0x0304)
            .setCipherSuite(integer(scenario.get("cipher_suite")))
            .setRead(trafficKeys(map(scenario.get("read"))))
            .setWrite(trafficKeys(map(scenario.get("write"))))
            .setPeerRecordSizeLimit(integer(scenario.get("peer_record_size_limit")))
            .build();
    RecordConnection connection = new RecordConnection(keys, new byte[0], in, out, () -> {}, () -> {});
    List<Map<String, Object>> steps = list(scenario.get("steps"));
    for (int i = 0; i < steps.size(); i++) {
      Map<String, Object> step = steps.get(i);
      Map<String, Object> expect = map(step.get("expect"));
      String action = (String) step.get("action");
      String where = scenario.get("name") + " step " + i + " (" + action + ")";
      out.reset();
      Map<String, Object> error = null;
      boolean refused = false;
      switch (action) {
        case "receive" -> {
          in.add(hex(step.get("data")));
          int keyUpdatesBefore = connection.keyUpdatesReceived();
          ByteArrayOutputStream data = new ByteArrayOutputStream();
          boolean closeNotify = false;
          byte[] buffer = new byte[1 << 15];
          try {
            for (int n; (n = connection.read(buffer, 0, buffer.length)) >= 0; ) {
              data.write(buffer, 0, n);
            }
            closeNotify = true;
          } catch (SocketTimeoutException e) {
            // The peer's bytes ran out.
          } catch (TlsAlertException e) {
            error = new LinkedHashMap<>();
            error.put("alert", BigInteger.valueOf(e.alert()));
            error.put("sent_by_peer", e.sentByPeer());
          }
          assertHex(expect.get("application_data"), data.toByteArray(), where + " application data");
          assertEquals(expect.get("close_notify"), closeNotify, where);
          assertEquals(
              integer(expect.get("key_updates_received")),
              connection.keyUpdatesReceived() - keyUpdatesBefore,
              where);
        }
        case "send" -> {
          byte[] data = hex(step.get("data"));
          try {
            connection.write(data, 0, data.length);
          } catch (SocketException e) {
            refused = true;
          }
        }
        case "update_keys" -> {
          try {
            connection.updateKeys((Boolean) step.get("request_peer_update"));
          } catch (javax.net.ssl.SSLException e) {
            // TLS 1.2 has no KeyUpdate: refused, nothing sent, the connection goes on.
            refused = true;
          }
        }
        case "close" -> connection.closeOutbound();
        default -> throw new AssertionError(where + ": unknown action");
      }
      assertEquals(expect.get("error"), error, where);
      assertEquals(Objects.requireNonNullElse(expect.get("refused"), false), refused, where);
      assertHex(expect.get("output"), out.toByteArray(), where + " output");
      if (error != null) {
        return;
      }
    }
  }

  /** Bytes against the expected hex, reported by length and first difference, not in full. */
  private static void assertHex(Object expected, byte[] actual, String where) {
    byte[] want = hex(expected);
    int common = Math.min(want.length, actual.length);
    int first = java.util.Arrays.mismatch(want, actual);
    if (first >= 0) {
      throw new AssertionFailedError(
          where + ": " + actual.length + " bytes, want " + want.length + "; first difference at "
              + first + (first < common ? "" : " (one is a prefix of the other)")
              + "\n got: " + HEX.formatHex(actual, first, Math.min(actual.length, first + 48))
              + "\nwant: " + HEX.formatHex(want, first, Math.min(want.length, first + 48)));
    }
  }

  private static TrafficKeys trafficKeys(Map<String, Object> keys) {
    return TrafficKeys.newBuilder()
        .setSecret(ByteString.copyFrom(hex(keys.get("secret"))))
        .setKey(ByteString.copyFrom(hex(keys.get("key"))))
        .setIv(ByteString.copyFrom(hex(keys.get("iv"))))
        .setSequenceNumber(((BigInteger) keys.get("sequence_number")).longValue())
        .build();
  }

  /** The peer's bytes as the test queued them; when they run out, a read timeout. */
  private static final class ScriptedInput extends InputStream {
    private final ByteArrayOutputStream queued = new ByteArrayOutputStream();
    private byte[] data = new byte[0];
    private int pos;

    void add(byte[] bytes) {
      queued.reset();
      queued.write(data, pos, data.length - pos);
      queued.writeBytes(bytes);
      data = queued.toByteArray();
      pos = 0;
    }

    @Override
    public int read() throws IOException {
      byte[] one = new byte[1];
      return read(one, 0, 1) < 0 ? -1 : one[0] & 0xff;
    }

    @Override
    public int read(byte[] b, int off, int len) throws IOException {
      if (pos == data.length) {
        throw new SocketTimeoutException("no more scripted input");
      }
      int n = Math.min(len, data.length - pos);
      System.arraycopy(data, pos, b, off, n);
      pos += n;
      return n;
    }
  }

  // ---------------------------------------------------------------- the JSON file

  /** tests/vectors/records.json, found by walking up from the working directory. */
  private static Map<String, Object> load() {
    for (Path dir = Path.of("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
      Path file = dir.resolve("tests").resolve("vectors").resolve("records.json");
      if (Files.isRegularFile(file)) {
        try {
          return map(new JsonReader(Files.readString(file)).value());
        } catch (IOException e) {
          throw new IllegalStateException(e);
        }
      }
    }
    throw new IllegalStateException("tests/vectors/records.json not found above the working directory");
  }

  @SuppressWarnings("unchecked")
  private static Map<String, Object> map(Object value) {
    return (Map<String, Object>) value;
  }

  @SuppressWarnings("unchecked")
  private static List<Map<String, Object>> list(Object value) {
    return (List<Map<String, Object>>) value;
  }

  private static int integer(Object value) {
    return ((BigInteger) value).intValueExact();
  }

  private static byte[] hex(Object value) {
    return HEX.parseHex((String) value);
  }

  /** Just enough JSON for the vectors: objects, arrays, strings without escapes, integers, booleans. */
  private static final class JsonReader {
    private final String text;
    private int pos;

    JsonReader(String text) {
      this.text = text;
    }

    Object value() {
      skipSpace();
      char c = text.charAt(pos);
      switch (c) {
        case '{':
          return object();
        case '[':
          return array();
        case '"':
          return string();
        case 't':
          return literal("true", Boolean.TRUE);
        case 'f':
          return literal("false", Boolean.FALSE);
        case 'n':
          return literal("null", null);
        default:
          int start = pos;
          while (pos < text.length() && (text.charAt(pos) == '-' || Character.isDigit(text.charAt(pos)))) {
            pos++;
          }
          if (start == pos) {
            throw new IllegalArgumentException("unexpected " + c + " at " + pos);
          }
          return new BigInteger(text.substring(start, pos));
      }
    }

    private Map<String, Object> object() {
      Map<String, Object> out = new LinkedHashMap<>();
      pos++;
      skipSpace();
      if (text.charAt(pos) == '}') {
        pos++;
        return out;
      }
      while (true) {
        skipSpace();
        String key = string();
        skipSpace();
        expect(':');
        out.put(key, value());
        skipSpace();
        if (text.charAt(pos) == '}') {
          pos++;
          return out;
        }
        expect(',');
      }
    }

    private List<Object> array() {
      List<Object> out = new ArrayList<>();
      pos++;
      skipSpace();
      if (text.charAt(pos) == ']') {
        pos++;
        return out;
      }
      while (true) {
        out.add(value());
        skipSpace();
        if (text.charAt(pos) == ']') {
          pos++;
          return out;
        }
        expect(',');
      }
    }

    private String string() {
      expect('"');
      int end = text.indexOf('"', pos);
      String s = text.substring(pos, end);
      if (s.indexOf('\\') >= 0) {
        throw new IllegalArgumentException("escapes are not supported, at " + pos);
      }
      pos = end + 1;
      return s;
    }

    private Object literal(String word, Object value) {
      if (!text.startsWith(word, pos)) {
        throw new IllegalArgumentException("unexpected input at " + pos);
      }
      pos += word.length();
      return value;
    }

    private void expect(char c) {
      if (text.charAt(pos) != c) {
        throw new IllegalArgumentException("expected " + c + " at " + pos);
      }
      pos++;
    }

    private void skipSpace() {
      while (pos < text.length() && Character.isWhitespace(text.charAt(pos))) {
        pos++;
      }
    }
  }
}
