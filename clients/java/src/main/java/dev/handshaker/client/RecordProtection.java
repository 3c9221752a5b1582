package dev.handshaker.client;

import java.security.GeneralSecurityException;
import java.util.Arrays;
import javax.crypto.Cipher;

/**
 * One direction's record protection (RFC 8446 section 5.2): seals or opens TLSCiphertext records
 * with an AEAD key, a per-record nonce and the KeyUpdate ratchet. Not thread-safe: the caller
 * serializes each direction.
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
    if (key.length != suite.keyLength() || iv.length != CipherSuite.IV_LENGTH) {
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
    if (sequenceNumber == -1L) {
      // "If a TLS implementation would need to wrap a sequence number, it MUST either rekey or
      // terminate the connection."
      throw new GeneralSecurityException("record sequence number exhausted");
    }
    byte[] nonce = iv.clone();
    long seq = sequenceNumber++;
    for (int i = 0; i < 8; i++) {
      nonce[nonce.length - 1 - i] ^= (byte) (seq >>> (8 * i));
    }
    return nonce;
  }
}
