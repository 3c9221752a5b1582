package dev.handshaker.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.HexFormat;
import javax.crypto.AEADBadTagException;
import org.junit.jupiter.api.Test;

/** Record protection against RFC 8448 section 3 (Simple 1-RTT Handshake), byte for byte. */
class RecordProtectionTest {
  private static final HexFormat HEX = HexFormat.of();

  // {client} derive write traffic keys for application data
  private static final byte[] CLIENT_APPLICATION_TRAFFIC_SECRET =
      HEX.parseHex("9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5");
  private static final byte[] CLIENT_APPLICATION_KEY = HEX.parseHex("17422dda596ed5d9acd890e3c63f5051");
  private static final byte[] CLIENT_APPLICATION_IV = HEX.parseHex("5b78923dee08579033e523d9");
  // {client} send application_data record: payload and complete record
  private static final byte[] APPLICATION_DATA =
      HEX.parseHex(
          "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
              + "202122232425262728292a2b2c2d2e2f3031");
  private static final byte[] APPLICATION_DATA_RECORD =
      HEX.parseHex(
          "1703030043a23f7054b62c94d0affafe8228ba55cbefacea42f914aa66bcab3f"
              + "2b9819a8a5b46b395bd54a9a20441e2b62974e1f5a6292a2977014bd1e3deae6"
              + "3aeebb21694915e4");

  @Test
  void trafficKeyAndIvDeriveFromTheTrafficSecret() throws Exception {
    CipherSuite suite = CipherSuite.TLS_AES_128_GCM_SHA256;
    assertArrayEquals(
        CLIENT_APPLICATION_KEY,
        Hkdf.expandLabel(suite, CLIENT_APPLICATION_TRAFFIC_SECRET, "key", 16));
    assertArrayEquals(
        CLIENT_APPLICATION_IV, Hkdf.expandLabel(suite, CLIENT_APPLICATION_TRAFFIC_SECRET, "iv", 12));
  }

  @Test
  void sealsTheFirstApplicationRecordAsTheRfcDoes() throws Exception {
    RecordProtection writer =
        RecordProtection.fromSecret(CipherSuite.TLS_AES_128_GCM_SHA256, CLIENT_APPLICATION_TRAFFIC_SECRET);
    byte[] record =
        writer.seal(RecordProtection.CONTENT_APPLICATION_DATA, APPLICATION_DATA, 0, APPLICATION_DATA.length);
    assertArrayEquals(APPLICATION_DATA_RECORD, record);
    assertEquals(1, writer.sequenceNumber());
  }

  @Test
  void opensTheFirstApplicationRecord() throws Exception {
    RecordProtection reader =
        RecordProtection.of(
            CipherSuite.TLS_AES_128_GCM_SHA256,
            CLIENT_APPLICATION_TRAFFIC_SECRET,
            CLIENT_APPLICATION_KEY,
            CLIENT_APPLICATION_IV,
            0);
    RecordProtection.Opened opened = reader.open(APPLICATION_DATA_RECORD, 0, APPLICATION_DATA_RECORD.length);
    assertEquals(RecordProtection.CONTENT_APPLICATION_DATA, opened.contentType());
    assertArrayEquals(APPLICATION_DATA, opened.content());
  }

  @Test
  void theNonceDependsOnTheSequenceNumber() throws Exception {
    // The same record at sequence number 1 uses another nonce and does not authenticate.
    RecordProtection reader =
        RecordProtection.of(
            CipherSuite.TLS_AES_128_GCM_SHA256,
            CLIENT_APPLICATION_TRAFFIC_SECRET,
            CLIENT_APPLICATION_KEY,
            CLIENT_APPLICATION_IV,
            1);
    assertThrows(
        AEADBadTagException.class,
        () -> reader.open(APPLICATION_DATA_RECORD, 0, APPLICATION_DATA_RECORD.length));
  }

  @Test
  void aTamperedHeaderDoesNotAuthenticate() throws Exception {
    RecordProtection reader =
        RecordProtection.fromSecret(CipherSuite.TLS_AES_128_GCM_SHA256, CLIENT_APPLICATION_TRAFFIC_SECRET);
    byte[] record = APPLICATION_DATA_RECORD.clone();
    record[2] = 0x01; // legacy_record_version is additional data
    assertThrows(AEADBadTagException.class, () -> reader.open(record, 0, record.length));
  }

  @Test
  void keyUpdateMovesBothSidesToTheSameNextKeys() throws Exception {
    for (CipherSuite suite : CipherSuite.values()) {
      if (suite.isTls12()) {
        continue; // TLS 1.2 has no KeyUpdate
      }
      byte[] secret = Hkdf.expandLabel(suite, CLIENT_APPLICATION_TRAFFIC_SECRET, "test", suite.hashLength());
      RecordProtection writer = RecordProtection.fromSecret(suite, secret);
      RecordProtection reader = RecordProtection.fromSecret(suite, secret);
      writer.seal(RecordProtection.CONTENT_APPLICATION_DATA, new byte[3], 0, 3);
      writer.update();
      byte[] record = writer.seal(RecordProtection.CONTENT_APPLICATION_DATA, APPLICATION_DATA, 0, 10);
      // Before its own update the reader cannot open a record under the next keys.
      RecordProtection stale = RecordProtection.fromSecret(suite, secret);
      assertThrows(AEADBadTagException.class, () -> stale.open(record, 0, record.length), suite.name());
      reader.update();
      RecordProtection.Opened opened = reader.open(record, 0, record.length);
      assertArrayEquals(java.util.Arrays.copyOf(APPLICATION_DATA, 10), opened.content(), suite.name());
      // The update starts the sequence again at 0, as RFC 8446 section 5.3 requires.
      assertEquals(1, reader.sequenceNumber());
    }
  }
}
