package dev.handshaker.client;

import java.security.GeneralSecurityException;
import java.util.Arrays;
import javax.crypto.Cipher;

/**
 * One direction's record protection (RFC 8446 section 5.2): seals or opens TLSCiphertext records
 * with an AEAD key, a per-record nonce and the KeyUpdate ratchet. For a TLS 1.2 suite, RFC 5246
 * section 6.2.3.3 instead: the content type in the header and the additional data, GCM's explicit
 * nonce (RFC 5288), no KeyUpdate. Not thread-safe: the caller serializes each direction.
 */
final class RecordProtection {
  static final int CONTENT_CHANGE_CIPHER_SPEC = 20;
  static final int CONTENT_ALERT = 21;
  static final int CONTENT_HANDSHAKE = 22;
  static final int CONTENT_APPLICATION_DATA = 23;

  static final int HEADER_LENGTH = 5;
  /** "The length MUST NOT exceed 2^14 bytes" for TLSPlaintext.fragment. */
  static final int MAX_PLAINTEXT = 1 << 14;
  /** "The length [of TLSCiphertext] MUST NOT exceed 2^14 + 256 bytes." */
  static final int MAX_CIPHERTEXT = MAX_PLAINTEXT + 256;
  /** TLS 1.2: "The length [of TLSCiphertext] MUST NOT exceed 2^14 + 2048" (RFC 5246 6.2.3). */
  static final int MAX_CIPHERTEXT_TLS12 = MAX_PLAINTEXT + 2048;

  /** A decrypted record: TLSInnerPlaintext's type and content. */
  record Opened(int contentType, byte[] content) {}

  private final CipherSuite suite;
  private final Cipher cipher;
  private byte[] secret;
  private byte[] iv;
  private javax.crypto.spec.SecretKeySpec key;
  private long sequenceNumber;

  private RecordProtection(
      CipherSuite suite, byte[] secret, byte[] key, byte[] iv, long sequenceNumber)
      throws GeneralSecurityException {
    if (key.length != suite.keyLength() || iv.length != suite.ivLength()) {
      throw new GeneralSecurityException("traffic key or IV has the wrong length for " + suite);
    }
    this.suite = suite;
    this.cipher = suite.newCipher();
    this.secret = secret.clone();
    this.key = suite.secretKey(key);
    this.iv = iv.clone();
    this.sequenceNumber = sequenceNumber;
  }

  static RecordProtection of(
      CipherSuite suite, byte[] secret, byte[] key, byte[] iv, long sequenceNumber)
      throws GeneralSecurityException {
    return new RecordProtection(suite, secret, key, iv, sequenceNumber);
  }

  /** Keys derived from a traffic secret alone, starting at sequence number 0. */
  static RecordProtection fromSecret(CipherSuite suite, byte[] secret)
      throws GeneralSecurityException {
    return new RecordProtection(
        suite,
        secret,
        Hkdf.expandLabel(suite, secret, "key", suite.keyLength()),
        Hkdf.expandLabel(suite, secret, "iv", CipherSuite.IV_LENGTH),
        0);
  }

  CipherSuite suite() {
    return suite;
  }

  long sequenceNumber() {
    return sequenceNumber;
  }

  /**
   * RFC 8446 section 7.2: application_traffic_secret_N+1 = HKDF-Expand-Label(
   * application_traffic_secret_N, "traffic upd", "", Hash.length); the key and IV are derived
   * anew and the sequence number starts again at 0.
   */
  void update() throws GeneralSecurityException {
    if (suite.isTls12()) {
      throw new GeneralSecurityException("TLS 1.2 has no KeyUpdate");
    }
    byte[] next = Hkdf.expandLabel(suite, secret, "traffic upd", suite.hashLength());
    Arrays.fill(secret, (byte) 0);
    secret = next;
    key = suite.secretKey(Hkdf.expandLabel(suite, secret, "key", suite.keyLength()));
    Arrays.fill(iv, (byte) 0);
    iv = Hkdf.expandLabel(suite, secret, "iv", CipherSuite.IV_LENGTH);
    sequenceNumber = 0;
  }

  /**
   * Seals one record: TLSInnerPlaintext = content || ContentType || zeros[0], behind the header
   * opaque_type = application_data, legacy_record_version = 0x0303.
   */
  byte[] seal(int contentType, byte[] content, int offset, int length)
      throws GeneralSecurityException {
    if (length > MAX_PLAINTEXT) {
      throw new IllegalArgumentException("record content larger than 2^14 bytes");
    }
    if (suite.isTls12()) {
      return seal12(contentType, content, offset, length);
    }
    int innerLength = length + 1;
    int bodyLength = innerLength + CipherSuite.TAG_LENGTH;
    byte[] record = new byte[HEADER_LENGTH + bodyLength];
    record[0] = CONTENT_APPLICATION_DATA;
    record[1] = 0x03;
    record[2] = 0x03;
    record[3] = (byte) (bodyLength >>> 8);
    record[4] = (byte) bodyLength;
    System.arraycopy(content, offset, record, HEADER_LENGTH, length);
    record[HEADER_LENGTH + length] = (byte) contentType;
    cipher.init(Cipher.ENCRYPT_MODE, key, suite.nonceSpec(nextNonce()));
    // additional_data = TLSCiphertext.opaque_type || legacy_record_version || length
    cipher.updateAAD(record, 0, HEADER_LENGTH);
    int written = cipher.doFinal(record, HEADER_LENGTH, innerLength, record, HEADER_LENGTH);
    if (written != bodyLength) {
      throw new GeneralSecurityException("AEAD output has an unexpected length");
    }
    return record;
  }

  /**
   * Opens one record whose 5-byte header starts at {@code offset}; {@code length} counts the
   * header and the body. Throws {@link javax.crypto.AEADBadTagException} when the record does not
   * authenticate.
   */
  Opened open(byte[] record, int offset, int length) throws GeneralSecurityException {
    if (suite.isTls12()) {
      return open12(record, offset, length);
    }
    int bodyLength = length - HEADER_LENGTH;
    if (bodyLength < CipherSuite.TAG_LENGTH + 1) {
      throw new javax.crypto.AEADBadTagException("record too short to hold a tag");
    }
    cipher.init(Cipher.DECRYPT_MODE, key, suite.nonceSpec(nextNonce()));
    cipher.updateAAD(record, offset, HEADER_LENGTH);
    byte[] inner = cipher.doFinal(record, offset + HEADER_LENGTH, bodyLength);
    // The content type is the last non-zero byte; the zeros after it are padding.
    int end = inner.length - 1;
    while (end >= 0 && inner[end] == 0) {
      end--;
    }
    if (end < 0) {
      return new Opened(0, new byte[0]);
    }
    return new Opened(inner[end] & 0xff, Arrays.copyOf(inner, end));
  }

  /** RFC 8446 section 5.3: the 64-bit sequence number, left-padded to iv_length, XOR the IV. */
  private byte[] nextNonce() throws GeneralSecurityException {
    byte[] nonce = iv.clone();
    long seq = nextSequenceNumber();
    for (int i = 0; i < 8; i++) {
      nonce[nonce.length - 1 - i] ^= (byte) (seq >>> (8 * i));
    }
    return nonce;
  }

  private long nextSequenceNumber() throws GeneralSecurityException {
    if (sequenceNumber == -1L) {
      // "If a TLS implementation would need to wrap a sequence number, it MUST either rekey or
      // terminate the connection." TLS 1.2 cannot rekey here.
      throw new GeneralSecurityException("record sequence number exhausted");
    }
    return sequenceNumber++;
  }

  // ---------------------------------------------------------------- TLS 1.2

  /**
   * Seals one TLS 1.2 record: type || 0x0303 || length || GenericAEADCipher, where a GCM record's
   * nonce_explicit is the sequence number (RFC 5288 section 3 lets the sender choose it).
   */
  private byte[] seal12(int contentType, byte[] content, int offset, int length)
      throws GeneralSecurityException {
    int explicitLength = suite.explicitNonceLength();
    int bodyLength = explicitLength + length + CipherSuite.TAG_LENGTH;
    byte[] record = new byte[HEADER_LENGTH + bodyLength];
    record[0] = (byte) contentType;
    record[1] = 0x03;
    record[2] = 0x03;
    record[3] = (byte) (bodyLength >>> 8);
    record[4] = (byte) bodyLength;
    long seq = nextSequenceNumber();
    if (explicitLength > 0) {
      putLong(record, HEADER_LENGTH, seq);
    }
    cipher.init(Cipher.ENCRYPT_MODE, key, suite.nonceSpec(nonce12(seq, record, HEADER_LENGTH)));
    cipher.updateAAD(additionalData12(seq, contentType, length));
    int written =
        cipher.doFinal(content, offset, length, record, HEADER_LENGTH + explicitLength);
    if (written != length + CipherSuite.TAG_LENGTH) {
      throw new GeneralSecurityException("AEAD output has an unexpected length");
    }
    return record;
  }

  /**
   * Opens one TLS 1.2 record; the content type is the header's. Throws {@link
   * javax.crypto.AEADBadTagException} when it does not authenticate or is too short for its
   * nonce and tag.
   */
  private Opened open12(byte[] record, int offset, int length) throws GeneralSecurityException {
    int explicitLength = suite.explicitNonceLength();
    int bodyLength = length - HEADER_LENGTH;
    int plaintextLength = bodyLength - explicitLength - CipherSuite.TAG_LENGTH;
    if (plaintextLength < 0) {
      throw new javax.crypto.AEADBadTagException("record too short for its nonce and tag");
    }
    int contentType = record[offset] & 0xff;
    long seq = nextSequenceNumber();
    // The peer chooses its GCM nonce_explicit: use the one it sent.
    cipher.init(
        Cipher.DECRYPT_MODE, key, suite.nonceSpec(nonce12(seq, record, offset + HEADER_LENGTH)));
    cipher.updateAAD(additionalData12(seq, contentType, plaintextLength));
    int ciphertextStart = offset + HEADER_LENGTH + explicitLength;
    byte[] content = cipher.doFinal(record, ciphertextStart, length - HEADER_LENGTH - explicitLength);
    return new Opened(contentType, content);
  }

  /**
   * RFC 5288 section 3 (GCM: salt[4] || nonce_explicit[8], the latter at {@code explicitAt}) or
   * RFC 7905 section 2 (ChaCha20-Poly1305: the padded sequence number XOR the 12-byte IV).
   */
  private byte[] nonce12(long seq, byte[] record, int explicitAt) {
    byte[] nonce = new byte[CipherSuite.IV_LENGTH];
    System.arraycopy(iv, 0, nonce, 0, iv.length);
    if (suite.explicitNonceLength() > 0) {
      System.arraycopy(record, explicitAt, nonce, CipherSuite.GCM_SALT_LENGTH, CipherSuite.GCM_EXPLICIT_NONCE_LENGTH);
      return nonce;
    }
    for (int i = 0; i < 8; i++) {
      nonce[nonce.length - 1 - i] ^= (byte) (seq >>> (8 * i));
    }
    return nonce;
  }

  /**
   * RFC 5246 section 6.2.3.3: additional_data = seq_num + TLSCompressed.type +
   * TLSCompressed.version + TLSCompressed.length.
   */
  private static byte[] additionalData12(long seq, int contentType, int length) {
    byte[] aad = new byte[13];
    putLong(aad, 0, seq);
    aad[8] = (byte) contentType;
    aad[9] = 0x03;
    aad[10] = 0x03;
    aad[11] = (byte) (length >>> 8);
    aad[12] = (byte) length;
    return aad;
  }

  private static void putLong(byte[] out, int at, long value) {
    for (int i = 0; i < 8; i++) {
      out[at + i] = (byte) (value >>> (56 - 8 * i));
    }
  }
}
