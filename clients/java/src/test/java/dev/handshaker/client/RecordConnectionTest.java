package dev.handshaker.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.handshaker.v1.SessionKeys;
import dev.handshaker.v1.TrafficKeys;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * The record layer after the handshake, against a scripted peer that seals and opens records with
 * the other end of the same keys: post-handshake messages, alerts, fragmentation, bad records.
 */
class RecordConnectionTest {
  private static final CipherSuite SUITE = CipherSuite.TLS_AES_256_GCM_SHA384;
  private static final byte[] OUR_SECRET = secret(1);
  private static final byte[] PEER_SECRET = secret(2);

  private final ByteArrayOutputStream peerBound = new ByteArrayOutputStream();
  private final AtomicInteger transportCloses = new AtomicInteger();
  private final RecordProtection peerWriter;
  private final RecordProtection peerReader;

  RecordConnectionTest() throws Exception {
    peerWriter = RecordProtection.fromSecret(SUITE, PEER_SECRET);
    peerReader = RecordProtection.fromSecret(SUITE, OUR_SECRET);
  }

  private static byte[] secret(int seed) {
    byte[] secret = new byte[SUITE.hashLength()];
    Arrays.fill(secret, (byte) seed);
    return secret;
  }

  private static TrafficKeys keys(byte[] secret) throws Exception {
    return TrafficKeys.newBuilder()
        .setSecret(ByteString.copyFrom(secret))
        .setKey(ByteString.copyFrom(Hkdf.expandLabel(SUITE, secret, "key", SUITE.keyLength())))
        .setIv(ByteString.copyFrom(Hkdf.expandLabel(SUITE, secret, "iv", 12)))
        .build();
  }

  private RecordConnection connection(byte[] unconsumed, byte[] wire, int peerRecordSizeLimit)
      throws Exception {
    SessionKeys keys =
        SessionKeys.newBuilder()
            .setVersion(0x0304)
            .setCipherSuite(SUITE.codePoint())
            .setRead(keys(PEER_SECRET))
            .setWrite(keys(OUR_SECRET))
            .setPeerRecordSizeLimit(peerRecordSizeLimit)
            .build();
    return new RecordConnection(
        keys,
        unconsumed,
        new ByteArrayInputStream(wire),
        peerBound,
        transportCloses::incrementAndGet,
        transportCloses::incrementAndGet);
  }

  private RecordConnection connection(byte[] wire) throws Exception {
    return connection(new byte[0], wire, 16384);
  }

  private byte[] peerRecord(int type, byte[] content) throws Exception {
    return peerWriter.seal(type, content, 0, content.length);
  }

  private byte[] peerApplicationData(String text) throws Exception {
    return peerRecord(RecordProtection.CONTENT_APPLICATION_DATA, text.getBytes(StandardCharsets.UTF_8));
  }

  private byte[] peerCloseNotify() throws Exception {
    return peerRecord(RecordProtection.CONTENT_ALERT, new byte[] {1, 0});
  }

  private static byte[] concat(byte[]... parts) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    for (byte[] part : parts) {
      out.writeBytes(part);
    }
    return out.toByteArray();
  }

  private static String readAll(RecordConnection connection) throws Exception {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    byte[] buffer = new byte[1024];
    for (int n; (n = connection.read(buffer, 0, buffer.length)) >= 0; ) {
      out.write(buffer, 0, n);
    }
    return out.toString(StandardCharsets.UTF_8);
  }

  /** The records this side wrote, opened with the peer's reader, KeyUpdates applied. */
  private List<RecordProtection.Opened> recordsTheyReceived() throws Exception {
    byte[] wire = peerBound.toByteArray();
    List<RecordProtection.Opened> records = new ArrayList<>();
    for (int pos = 0; pos < wire.length; ) {
      int length = ((wire[pos + 3] & 0xff) << 8) | (wire[pos + 4] & 0xff);
      RecordProtection.Opened opened = peerReader.open(wire, pos, 5 + length);
      records.add(opened);
      if (opened.contentType() == RecordProtection.CONTENT_HANDSHAKE && opened.content()[0] == 24) {
        peerReader.update();
      }
      pos += 5 + length;
    }
    return records;
  }

  @Test
  void newSessionTicketIsDroppedAndTheDataAfterItIsRead() throws Exception {
    // lifetime, age_add, ticket_nonce<0..255>, ticket<1..2^16-1>, extensions<0..2^16-2>
    byte[] ticket = {4, 0, 0, 15, 0, 0, 0x0e, 0x10, 1, 2, 3, 4, 0, 0, 2, 9, 9, 0, 0};
    byte[] wire =
        concat(peerRecord(RecordProtection.CONTENT_HANDSHAKE, ticket), peerApplicationData("hello"), peerCloseNotify());
    RecordConnection connection = connection(wire);
    assertEquals("hello", readAll(connection));
    assertTrue(connection.closeNotifyReceived());
  }

  @Test
  void bytesTheServiceDidNotConsumeAreTheFirstRecords() throws Exception {
    byte[] first = peerApplicationData("arrived with Finished, ");
    byte[] rest = concat(peerApplicationData("and after"), peerCloseNotify());
    // The unconsumed bytes end mid-record: the rest of it comes from the socket.
    byte[] unconsumed = concat(first, Arrays.copyOf(rest, 7));
    byte[] wire = Arrays.copyOfRange(rest, 7, rest.length);
    assertEquals("arrived with Finished, and after", readAll(connection(unconsumed, wire, 16384)));
  }

  @Test
  void keyUpdateRequestedIsAnsweredWithTheNextWriteKeys() throws Exception {
    byte[] keyUpdate = peerRecord(RecordProtection.CONTENT_HANDSHAKE, new byte[] {24, 0, 0, 1, 1});
    peerWriter.update();
    byte[] wire = concat(keyUpdate, peerApplicationData("under new keys"), peerCloseNotify());
    RecordConnection connection = connection(wire);
    assertEquals("under new keys", readAll(connection));
    byte[] reply = "reply".getBytes(StandardCharsets.UTF_8);
    connection.write(reply, 0, reply.length);
    List<RecordProtection.Opened> received = recordsTheyReceived();
    assertEquals(2, received.size());
    assertEquals(RecordProtection.CONTENT_HANDSHAKE, received.get(0).contentType());
    // KeyUpdate with request_update = update_not_requested: no ping-pong.
    assertArrayEquals(new byte[] {24, 0, 0, 1, 0}, received.get(0).content());
    assertArrayEquals(reply, received.get(1).content());
  }

  @Test
  void ourKeyUpdateCanAskThePeerForOne() throws Exception {
    RecordConnection connection = connection(new byte[0]);
    connection.updateKeys(true);
    byte[] data = "after".getBytes(StandardCharsets.UTF_8);
    connection.write(data, 0, data.length);
    List<RecordProtection.Opened> received = recordsTheyReceived();
    assertArrayEquals(new byte[] {24, 0, 0, 1, 1}, received.get(0).content());
    assertArrayEquals(data, received.get(1).content());
  }

  @Test
  void writesAreFragmentedAtThePeerRecordSizeLimit() throws Exception {
    RecordConnection connection = connection(new byte[0], new byte[0], 1000);
    byte[] data = new byte[2500];
    Arrays.fill(data, (byte) 'x');
    connection.write(data, 0, data.length);
    List<RecordProtection.Opened> received = recordsTheyReceived();
    assertEquals(List.of(1000, 1000, 500), received.stream().map(r -> r.content().length).toList());
  }

  @Test
  void writesDefaultTo16384ByteRecords() throws Exception {
    RecordConnection connection = connection(new byte[0], new byte[0], 0);
    byte[] data = new byte[40_000];
    connection.write(data, 0, data.length);
    assertEquals(
        List.of(16384, 16384, 7232), recordsTheyReceived().stream().map(r -> r.content().length).toList());
  }

  @Test
  void aRecordThatDoesNotAuthenticateFailsWithBadRecordMacAndTellsThePeer() throws Exception {
    byte[] record = peerApplicationData("tampered");
    record[record.length - 1] ^= 1;
    RecordConnection connection = connection(record);
    byte[] buffer = new byte[64];
    TlsAlertException failure = assertThrows(TlsAlertException.class, () -> connection.read(buffer, 0, 64));
    assertEquals(Alert.BAD_RECORD_MAC, failure.alert());
    assertFalse(failure.sentByPeer());
    List<RecordProtection.Opened> received = recordsTheyReceived();
    assertEquals(RecordProtection.CONTENT_ALERT, received.get(0).contentType());
    assertArrayEquals(new byte[] {2, Alert.BAD_RECORD_MAC}, received.get(0).content());
    assertEquals(1, transportCloses.get());
  }

  @Test
  void aFatalAlertFromThePeerSurfacesWithItsDescription() throws Exception {
    RecordConnection connection =
        connection(peerRecord(RecordProtection.CONTENT_ALERT, new byte[] {2, Alert.INTERNAL_ERROR}));
    TlsAlertException failure =
        assertThrows(TlsAlertException.class, () -> connection.read(new byte[8], 0, 8));
    assertEquals(Alert.INTERNAL_ERROR, failure.alert());
    assertTrue(failure.sentByPeer());
  }

  @Test
  void anUnprotectedChangeCipherSpecAfterTheHandshakeIsUnexpected() throws Exception {
    RecordConnection connection = connection(new byte[] {20, 3, 3, 0, 1, 1});
    TlsAlertException failure =
        assertThrows(TlsAlertException.class, () -> connection.read(new byte[8], 0, 8));
    assertEquals(Alert.UNEXPECTED_MESSAGE, failure.alert());
  }

  @Test
  void aKeyUpdateThatDoesNotEndItsRecordIsUnexpected() throws Exception {
    byte[] twoMessages = {24, 0, 0, 1, 0, 4, 0, 0, 0};
    RecordConnection connection = connection(peerRecord(RecordProtection.CONTENT_HANDSHAKE, twoMessages));
    TlsAlertException failure =
        assertThrows(TlsAlertException.class, () -> connection.read(new byte[8], 0, 8));
    assertEquals(Alert.UNEXPECTED_MESSAGE, failure.alert());
  }

  @Test
  void theConnectionEndingWithoutCloseNotifyIsAnError() throws Exception {
    RecordConnection connection = connection(peerApplicationData("cut"));
    byte[] buffer = new byte[8];
    assertEquals(3, connection.read(buffer, 0, 8));
    assertThrows(EOFException.class, () -> connection.read(buffer, 0, 8));
  }

  @Test
  void closeOutboundSendsCloseNotifyOnceAndRefusesMoreData() throws Exception {
    RecordConnection connection = connection(new byte[0]);
    connection.closeOutbound();
    connection.closeOutbound();
    List<RecordProtection.Opened> received = recordsTheyReceived();
    assertEquals(1, received.size());
    assertEquals(RecordProtection.CONTENT_ALERT, received.get(0).contentType());
    assertArrayEquals(new byte[] {1, Alert.CLOSE_NOTIFY}, received.get(0).content());
    assertThrows(java.net.SocketException.class, () -> connection.write(new byte[1], 0, 1));
  }
}
