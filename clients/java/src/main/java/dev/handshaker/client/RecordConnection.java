package dev.handshaker.client;

import dev.handshaker.v1.SessionKeys;
import dev.handshaker.v1.TrafficKeys;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.SocketException;
import java.security.GeneralSecurityException;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;
import javax.crypto.AEADBadTagException;

/**
 * The record layer of an established TLS 1.3 connection (RFC 8446 sections 4.6 and 5): reads and
 * writes application data in protected records, drops NewSessionTicket, answers KeyUpdate, and
 * closes with close_notify. One thread may read while another writes.
 *
 * <p>A TLS 1.2 connection (SessionKeys.version 0x0303; RFC 5246 sections 6.2 and 7.2) has no
 * KeyUpdate; it ignores warning alerts (at most {@value #MAX_WARNING_ALERTS} in a row) and
 * answers a HelloRequest or ClientHello with a warning no_renegotiation (RFC 5746 section 4).
 */
final class RecordConnection {
  private static final int HANDSHAKE_NEW_SESSION_TICKET = 4;
  private static final int HANDSHAKE_KEY_UPDATE = 24;
  private static final int UPDATE_NOT_REQUESTED = 0;
  private static final int UPDATE_REQUESTED = 1;
  // A NewSessionTicket carries a ticket of up to 2^16-1 bytes and extensions of up to 2^16-2.
  private static final int MAX_POST_HANDSHAKE_MESSAGE = 1 << 17;
  private static final int ALERT_LEVEL_WARNING = 1;
  private static final int ALERT_LEVEL_FATAL = 2;
  // TLS 1.2 post-handshake messages that ask for a renegotiation (RFC 5246 section 7.4).
  private static final int HANDSHAKE_HELLO_REQUEST = 0;
  private static final int HANDSHAKE_CLIENT_HELLO = 1;
  private static final int ALERT_NO_RENEGOTIATION = 100;
  // Warning alerts in a row before the peer is cut off (BoringSSL's kMaxWarningAlerts).
  static final int MAX_WARNING_ALERTS = 4;

  private final InputStream in;
  private final OutputStream out;
  private final Runnable closeTransport;
  private final Runnable closeAfterAlert;
  private final RecordProtection reader;
  private final RecordProtection writer;
  private final int fragmentLimit;
  private final boolean tls12;

  private final ReentrantLock readLock = new ReentrantLock();
  private final ReentrantLock writeLock = new ReentrantLock();

  // Read side, guarded by readLock.
  private byte[] raw = new byte[RecordProtection.HEADER_LENGTH + RecordProtection.MAX_CIPHERTEXT];
  private int rawStart;
  private int rawEnd;
  private byte[] plaintext = new byte[0];
  private int plaintextPos;
  private final ByteArrayOutputStream handshakeBuffer = new ByteArrayOutputStream();
  private boolean closeNotifyReceived;
  // TLS 1.2: warning alerts since the last application data record.
  private int warningAlertsInARow;

  // Write side, guarded by writeLock.
  private boolean closeNotifySent;
  // Set by the reader when the peer sent update_requested after our last KeyUpdate; the writer
  // sends KeyUpdate(update_not_requested) before its next record, whatever its type.
  private volatile boolean keyUpdateOwed;
  // TLS 1.2 renegotiation requests not yet answered with no_renegotiation: the reader sends them
  // when the write lock is free, else the writer does before its next record or as it unlocks.
  private final java.util.concurrent.atomic.AtomicInteger renegotiationsOwed =
      new java.util.concurrent.atomic.AtomicInteger();

  private volatile IOException failure;

  // KeyUpdates seen and sent, for observability.
  private final java.util.concurrent.atomic.AtomicInteger keyUpdatesReceived =
      new java.util.concurrent.atomic.AtomicInteger();
  private final java.util.concurrent.atomic.AtomicInteger keyUpdatesSent =
      new java.util.concurrent.atomic.AtomicInteger();

  RecordConnection(
      SessionKeys keys,
      byte[] unconsumed,
      InputStream in,
      OutputStream out,
      Runnable closeTransport,
      Runnable closeAfterAlert)
      throws IOException {
    this.in = in;
    this.out = out;
    this.closeTransport = closeTransport;
    this.closeAfterAlert = closeAfterAlert;
    try {
      CipherSuite suite = CipherSuite.fromCodePoint(keys.getCipherSuite());
      if (suite.protocolVersion() != keys.getVersion()) {
        throw new IllegalArgumentException(
            String.format("%s is not a suite of version 0x%04x", suite, keys.getVersion()));
      }
      this.tls12 = suite.isTls12();
      this.reader = protection(suite, keys.getRead());
      this.writer = protection(suite, keys.getWrite());
    } catch (GeneralSecurityException | IllegalArgumentException e) {
      throw new javax.net.ssl.SSLException("cannot use the session keys: " + e.getMessage());
    }
    int limit = keys.getPeerRecordSizeLimit();
    this.fragmentLimit =
        limit <= 0 ? RecordProtection.MAX_PLAINTEXT : Math.min(limit, RecordProtection.MAX_PLAINTEXT);
    if (unconsumed.length > raw.length) {
      raw = new byte[unconsumed.length];
    }
    System.arraycopy(unconsumed, 0, raw, 0, unconsumed.length);
    rawEnd = unconsumed.length;
  }

  private static RecordProtection protection(CipherSuite suite, TrafficKeys keys)
      throws GeneralSecurityException {
    return RecordProtection.of(
        suite,
        keys.getSecret().toByteArray(),
        keys.getKey().toByteArray(),
        keys.getIv().toByteArray(),
        keys.getSequenceNumber());
  }

  int fragmentLimit() {
    return fragmentLimit;
  }

  // ---------------------------------------------------------------- reading

  /** Reads application data; -1 once the peer sent close_notify. */
  int read(byte[] b, int off, int len) throws IOException {
    java.util.Objects.checkFromIndexSize(off, len, b.length);
    readLock.lock();
    try {
      while (plaintextPos == plaintext.length) {
        if (closeNotifyReceived) {
          return -1;
        }
        if (len == 0) {
          return 0;
        }
        readRecord();
      }
      int n = Math.min(len, plaintext.length - plaintextPos);
      System.arraycopy(plaintext, plaintextPos, b, off, n);
      plaintextPos += n;
      return n;
    } finally {
      readLock.unlock();
    }
  }

  int available() {
    if (!readLock.tryLock()) {
      return 0;
    }
    try {
      return plaintext.length - plaintextPos;
    } finally {
      readLock.unlock();
    }
  }

  private void readRecord() throws IOException {
    if (tls12) {
      readRecord12();
      return;
    }
    throwIfFailed();
    if (!fill(RecordProtection.HEADER_LENGTH)) {
      throw fail(new EOFException("the peer closed the connection without close_notify"));
    }
    int type = raw[rawStart] & 0xff;
    int length = ((raw[rawStart + 3] & 0xff) << 8) | (raw[rawStart + 4] & 0xff);
    if (type != RecordProtection.CONTENT_APPLICATION_DATA) {
      // Every record after the handshake is protected; an outer type other than
      // application_data (a stray change_cipher_spec, a plaintext alert) is unexpected.
      throw alertAndFail(Alert.UNEXPECTED_MESSAGE, "unprotected record of type " + type + " after the handshake");
    }
    if (length > RecordProtection.MAX_CIPHERTEXT) {
      throw alertAndFail(Alert.RECORD_OVERFLOW, "record longer than 2^14 + 256 bytes");
    }
    int total = RecordProtection.HEADER_LENGTH + length;
    if (!fill(total)) {
      throw fail(new EOFException("the connection ended inside a record"));
    }
    RecordProtection.Opened opened;
    try {
      opened = reader.open(raw, rawStart, total);
    } catch (AEADBadTagException e) {
      throw alertAndFail(Alert.BAD_RECORD_MAC, "a record did not authenticate");
    } catch (GeneralSecurityException e) {
      throw alertAndFail(Alert.INTERNAL_ERROR, "record decryption: " + e.getClass().getSimpleName());
    } finally {
      rawStart += total;
    }
    // "The presence of padding does not change the overall record size limitations: the full
    // encoded TLSInnerPlaintext MUST NOT exceed 2^14 + 1 octets."
    if (length - CipherSuite.TAG_LENGTH > RecordProtection.MAX_PLAINTEXT + 1) {
      throw alertAndFail(Alert.RECORD_OVERFLOW, "inner plaintext longer than 2^14 + 1 bytes");
    }
    byte[] content = opened.content();
    // "Handshake messages MUST NOT be interleaved with other record types."
    if (opened.contentType() != RecordProtection.CONTENT_HANDSHAKE && handshakeBuffer.size() > 0) {
      throw alertAndFail(Alert.UNEXPECTED_MESSAGE, "a record interrupted a handshake message");
    }
    switch (opened.contentType()) {
      case RecordProtection.CONTENT_APPLICATION_DATA:
        plaintext = content;
        plaintextPos = 0;
        break;
      case RecordProtection.CONTENT_HANDSHAKE:
        if (content.length == 0) {
          throw alertAndFail(Alert.UNEXPECTED_MESSAGE, "zero-length handshake record");
        }
        handshakeBuffer.writeBytes(content);
        handlePostHandshakeMessages();
        break;
      case RecordProtection.CONTENT_ALERT:
        handleAlert(content);
        break;
      default:
        throw alertAndFail(
            Alert.UNEXPECTED_MESSAGE, "protected record of content type " + opened.contentType());
    }
  }

  /** Fills the raw buffer until it holds {@code need} bytes from rawStart; false on EOF. */
  private boolean fill(int need) throws IOException {
    if (rawEnd - rawStart >= need) {
      return true;
    }
    if (raw.length - rawStart < need) {
      int have = rawEnd - rawStart;
      byte[] target = raw.length >= need ? raw : new byte[need];
      System.arraycopy(raw, rawStart, target, 0, have);
      raw = target;
      rawStart = 0;
      rawEnd = have;
    }
    while (rawEnd - rawStart < need) {
      int n;
      try {
        n = in.read(raw, rawEnd, raw.length - rawEnd);
      } catch (java.net.SocketTimeoutException e) {
        // A read timeout leaves the connection usable: the partial record stays buffered.
        throw e;
      } catch (IOException e) {
        throw fail(e);
      }
      if (n < 0) {
        if (rawEnd - rawStart > 0) {
          throw fail(new EOFException("the connection ended inside a record"));
        }
        return false;
      }
      rawEnd += n;
    }
    return true;
  }

  private void handlePostHandshakeMessages() throws IOException {
    byte[] buffered = handshakeBuffer.toByteArray();
    int pos = 0;
    while (buffered.length - pos >= 4) {
      int type = buffered[pos] & 0xff;
      int length =
          ((buffered[pos + 1] & 0xff) << 16) | ((buffered[pos + 2] & 0xff) << 8) | (buffered[pos + 3] & 0xff);
      if (length > MAX_POST_HANDSHAKE_MESSAGE) {
        throw alertAndFail(Alert.UNEXPECTED_MESSAGE, "post-handshake message too long");
      }
      if (buffered.length - pos - 4 < length) {
        break;
      }
      int body = pos + 4;
      pos = body + length;
      switch (type) {
        case HANDSHAKE_NEW_SESSION_TICKET:
          // This client does not resume sessions: the ticket is dropped.
          break;
        case HANDSHAKE_KEY_UPDATE:
          if (length != 1) {
            throw alertAndFail(Alert.DECODE_ERROR, "KeyUpdate body is not one byte");
          }
          // "Implementations MUST enforce that [KeyUpdate] is aligned with a record boundary."
          if (pos != buffered.length) {
            throw alertAndFail(Alert.UNEXPECTED_MESSAGE, "KeyUpdate not at the end of its record");
          }
          receiveKeyUpdate(buffered[body] & 0xff);
          break;
        default:
          throw alertAndFail(Alert.UNEXPECTED_MESSAGE, "post-handshake message of type " + type);
      }
    }
    handshakeBuffer.reset();
    handshakeBuffer.write(buffered, pos, buffered.length - pos);
  }

  private void receiveKeyUpdate(int requestUpdate) throws IOException {
    if (requestUpdate != UPDATE_NOT_REQUESTED && requestUpdate != UPDATE_REQUESTED) {
      throw alertAndFail(Alert.ILLEGAL_PARAMETER, "KeyUpdate request_update is " + requestUpdate);
    }
    try {
      reader.update();
    } catch (GeneralSecurityException e) {
      throw alertAndFail(Alert.INTERNAL_ERROR, "KeyUpdate: " + e.getClass().getSimpleName());
    }
    keyUpdatesReceived.incrementAndGet();
    if (requestUpdate == UPDATE_REQUESTED) {
      // "the receiver MUST send a KeyUpdate of its own with request_update set to
      // update_not_requested prior to sending its next Application Data record". Owed, not sent
      // here: the writer sends it ahead of its next record, so requests that arrive meanwhile
      // share one answer ("an implementation which receives multiple KeyUpdates while it is
      // silent [responds] with a single update"), and a reader never waits on a blocked writer.
      keyUpdateOwed = true;
    }
  }

  private void handleAlert(byte[] content) throws IOException {
    if (content.length != 2) {
      throw alertAndFail(Alert.DECODE_ERROR, "alert record is not two bytes");
    }
    int description = content[1] & 0xff;
    if (description == Alert.CLOSE_NOTIFY) {
      closeNotifyReceived = true;
      return;
    }
    if (description == Alert.USER_CANCELED) {
      // user_canceled is followed by close_notify; nothing to do until then.
      return;
    }
    // RFC 8446 section 6.2: every other alert is fatal, whatever its level says.
    TlsAlertException error = new TlsAlertException(description, "", true);
    failure = error;
    closeTransport.run();
    throw error;
  }

  // ---------------------------------------------------------------- reading TLS 1.2

  /** One TLS 1.2 record: RFC 5246 section 6.2, the content type in the clear header. */
  private void readRecord12() throws IOException {
    throwIfFailed();
    if (!fill(RecordProtection.HEADER_LENGTH)) {
      throw fail(new EOFException("the peer closed the connection without close_notify"));
    }
    int type = raw[rawStart] & 0xff;
    int length = ((raw[rawStart + 3] & 0xff) << 8) | (raw[rawStart + 4] & 0xff);
    if (raw[rawStart + 1] != 0x03 || raw[rawStart + 2] != 0x03) {
      throw alertAndFail(Alert.PROTOCOL_VERSION, "a record that is not TLS 1.2");
    }
    if (length > RecordProtection.MAX_CIPHERTEXT_TLS12) {
      throw alertAndFail(Alert.RECORD_OVERFLOW, "record longer than 2^14 + 2048 bytes");
    }
    int total = RecordProtection.HEADER_LENGTH + length;
    if (!fill(total)) {
      throw fail(new EOFException("the connection ended inside a record"));
    }
    if (type != RecordProtection.CONTENT_APPLICATION_DATA
        && type != RecordProtection.CONTENT_ALERT
        && type != RecordProtection.CONTENT_HANDSHAKE) {
      rawStart += total;
      // change_cipher_spec belongs to the handshake; nothing else is negotiated.
      throw alertAndFail(Alert.UNEXPECTED_MESSAGE, "a record of type " + type + " after the handshake");
    }
    byte[] content = open12(total);
    if (type != RecordProtection.CONTENT_HANDSHAKE && handshakeBuffer.size() > 0) {
      throw alertAndFail(Alert.UNEXPECTED_MESSAGE, "a record interrupted a handshake message");
    }
    if (type == RecordProtection.CONTENT_APPLICATION_DATA) {
      warningAlertsInARow = 0;
      plaintext = content;
      plaintextPos = 0;
    } else if (content.length == 0) {
      // "Implementations MUST NOT send zero-length fragments of Handshake, Alert, or
      // ChangeCipherSpec content types." (section 6.2.1)
      throw alertAndFail(Alert.UNEXPECTED_MESSAGE, "a zero-length handshake or alert record");
    } else if (type == RecordProtection.CONTENT_ALERT) {
      handleAlert12(content);
    } else {
      handshakeBuffer.writeBytes(content);
      handlePostHandshake12();
    }
  }

  /** Decrypts the TLS 1.2 record of {@code total} bytes at rawStart and consumes it. */
  private byte[] open12(int total) throws IOException {
    byte[] content;
    try {
      content = reader.open(raw, rawStart, total).content();
    } catch (AEADBadTagException e) {
      throw alertAndFail(Alert.BAD_RECORD_MAC, "a record did not authenticate");
    } catch (GeneralSecurityException e) {
      throw alertAndFail(Alert.INTERNAL_ERROR, "record decryption: " + e.getClass().getSimpleName());
    } finally {
      rawStart += total;
    }
    // "The length (in bytes) of the following TLSCompressed.fragment. The length MUST NOT exceed 2^14."
    if (content.length > RecordProtection.MAX_PLAINTEXT) {
      throw alertAndFail(Alert.RECORD_OVERFLOW, "plaintext longer than 2^14 bytes");
    }
    return content;
  }

  /**
   * RFC 5246 section 7.2: close_notify ends the peer's stream; "If an alert with a level of
   * warning is sent and received, generally the connection can continue normally" (bounded, so a
   * peer cannot keep us spinning); a fatal alert ends the connection.
   */
  private void handleAlert12(byte[] content) throws IOException {
    if (content.length != 2) {
      throw alertAndFail(Alert.DECODE_ERROR, "alert record is not two bytes");
    }
    int level = content[0] & 0xff;
    int description = content[1] & 0xff;
    if (description == Alert.CLOSE_NOTIFY) {
      closeNotifyReceived = true;
    } else if (level == ALERT_LEVEL_WARNING) {
      if (++warningAlertsInARow > MAX_WARNING_ALERTS) {
        throw alertAndFail(Alert.UNEXPECTED_MESSAGE, "too many warning alerts in a row");
      }
    } else {
      TlsAlertException error = new TlsAlertException(description, "", true);
      failure = error;
      closeTransport.run();
      throw error;
    }
  }

  /**
   * Reassembles post-handshake messages: a HelloRequest (a server's) or a ClientHello (a
   * client's) asks for a renegotiation, refused with a warning no_renegotiation ("Sent by the
   * client in response to a hello request or by the server in response to a client hello after
   * initial handshaking", section 7.2.2); any other message is unexpected.
   */
  private void handlePostHandshake12() throws IOException {
    byte[] buffered = handshakeBuffer.toByteArray();
    int pos = 0;
    boolean refused = false;
    while (buffered.length - pos >= 4) {
      int type = buffered[pos] & 0xff;
      int length =
          ((buffered[pos + 1] & 0xff) << 16) | ((buffered[pos + 2] & 0xff) << 8) | (buffered[pos + 3] & 0xff);
      if (type != HANDSHAKE_HELLO_REQUEST && type != HANDSHAKE_CLIENT_HELLO) {
        throw alertAndFail(Alert.UNEXPECTED_MESSAGE, "handshake message of type " + type + " after the handshake");
      }
      // struct { } HelloRequest;
      if (type == HANDSHAKE_HELLO_REQUEST && length != 0) {
        throw alertAndFail(Alert.DECODE_ERROR, "a HelloRequest with a body");
      }
      if (length > MAX_POST_HANDSHAKE_MESSAGE) {
        throw alertAndFail(Alert.UNEXPECTED_MESSAGE, "post-handshake message too long");
      }
      if (buffered.length - pos - 4 < length) {
        break;
      }
      pos += 4 + length;
      renegotiationsOwed.incrementAndGet();
      refused = true;
    }
    handshakeBuffer.reset();
    handshakeBuffer.write(buffered, pos, buffered.length - pos);
    if (refused) {
      flushOwedRefusals();
    }
  }

  /** Sends the owed no_renegotiation alerts now unless a writer holds the lock (it sends them). */
  private void flushOwedRefusals() {
    if (renegotiationsOwed.get() == 0 || !writeLock.tryLock()) {
      return;
    }
    try {
      if (failure != null || closeNotifySent) {
        renegotiationsOwed.set(0);
      } else {
        sendOwedRefusals();
        out.flush();
      }
    } catch (IOException e) {
      // sealAndWrite recorded the failure; the next read or write reports it.
    } finally {
      unlockWrite();
    }
  }

  /** The owed warning no_renegotiation alerts, before our next record; the caller flushes. */
  private void sendOwedRefusals() throws IOException {
    for (int n = renegotiationsOwed.getAndSet(0); n > 0; n--) {
      byte[] alert = {ALERT_LEVEL_WARNING, (byte) ALERT_NO_RENEGOTIATION};
      sealAndWrite(RecordProtection.CONTENT_ALERT, alert, 0, alert.length);
    }
  }

  /** Releases the write lock, then sends what the reader left owed while it was held. */
  private void unlockWrite() {
    writeLock.unlock();
    if (renegotiationsOwed.get() > 0) {
      flushOwedRefusals();
    }
  }

  // ---------------------------------------------------------------- writing

  void write(byte[] b, int off, int len) throws IOException {
    java.util.Objects.checkFromIndexSize(off, len, b.length);
    writeLock.lock();
    try {
      throwIfFailed();
      if (closeNotifySent) {
        throw new SocketException("the TLS connection is closed for writing");
      }
      // Nothing to send is no record, as in the other clients (tests/vectors/records.json).
      while (len > 0) {
        int n = Math.min(len, fragmentLimit);
        writeRecord(RecordProtection.CONTENT_APPLICATION_DATA, b, off, n);
        off += n;
        len -= n;
      }
      out.flush();
    } finally {
      unlockWrite();
    }
  }

  /** Sends a KeyUpdate and switches to the next write keys; {@code requestPeer} asks for one back. */
  void updateKeys(boolean requestPeer) throws IOException {
    if (tls12) {
      // Refused before anything is sent; the connection goes on.
      throw new javax.net.ssl.SSLException("TLS 1.2 has no KeyUpdate (RFC 8446 only)");
    }
    writeLock.lock();
    try {
      throwIfFailed();
      if (closeNotifySent) {
        throw new SocketException("the TLS connection is closed for writing");
      }
      sendOwedKeyUpdate();
      sendKeyUpdate(requestPeer ? UPDATE_REQUESTED : UPDATE_NOT_REQUESTED);
      out.flush();
    } finally {
      writeLock.unlock();
    }
  }

  /** Our answer to the peer's update_requested, when one is owed; the caller flushes. */
  private void sendOwedKeyUpdate() throws IOException {
    if (keyUpdateOwed && !closeNotifySent) {
      keyUpdateOwed = false;
      sendKeyUpdate(UPDATE_NOT_REQUESTED);
    }
  }

  private void sendKeyUpdate(int requestUpdate) throws IOException {
    // struct { KeyUpdateRequest request_update; } KeyUpdate; behind a 4-byte handshake header.
    byte[] message = {HANDSHAKE_KEY_UPDATE, 0, 0, 1, (byte) requestUpdate};
    sealAndWrite(RecordProtection.CONTENT_HANDSHAKE, message, 0, message.length);
    try {
      writer.update();
    } catch (GeneralSecurityException e) {
      throw fail(new javax.net.ssl.SSLException("KeyUpdate: " + e.getClass().getSimpleName()));
    }
    keyUpdatesSent.incrementAndGet();
  }

  /** Writes one record, after the KeyUpdate (or TLS 1.2 refusals) we owe the peer if any. */
  private void writeRecord(int contentType, byte[] b, int off, int len) throws IOException {
    sendOwedRefusals();
    sendOwedKeyUpdate();
    sealAndWrite(contentType, b, off, len);
  }

  private void sealAndWrite(int contentType, byte[] b, int off, int len) throws IOException {
    byte[] record;
    try {
      record = writer.seal(contentType, b, off, len);
    } catch (GeneralSecurityException e) {
      throw fail(new javax.net.ssl.SSLException("record encryption: " + e.getClass().getSimpleName()));
    }
    try {
      out.write(record);
    } catch (IOException e) {
      throw fail(e);
    }
  }

  /** Sends close_notify once; the transport stays open for reading the peer's. */
  void closeOutbound() throws IOException {
    // A writer blocked on a peer that does not read must not hold close() forever.
    boolean locked;
    try {
      locked = writeLock.tryLock(2, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      locked = false;
    }
    if (!locked) {
      return;
    }
    try {
      if (closeNotifySent || failure != null) {
        return;
      }
      sendOwedRefusals();
      sendOwedKeyUpdate();
      closeNotifySent = true;
      byte[] alert = {ALERT_LEVEL_WARNING, Alert.CLOSE_NOTIFY};
      sealAndWrite(RecordProtection.CONTENT_ALERT, alert, 0, alert.length);
      out.flush();
    } finally {
      writeLock.unlock();
    }
  }

  int keyUpdatesReceived() {
    return keyUpdatesReceived.get();
  }

  int keyUpdatesSent() {
    return keyUpdatesSent.get();
  }

  boolean closeNotifyReceived() {
    return closeNotifyReceived;
  }

  // ---------------------------------------------------------------- failures

  private void throwIfFailed() throws IOException {
    IOException error = failure;
    if (error != null) {
      throw new SocketException("the TLS connection failed earlier: " + error.getMessage());
    }
  }

  private IOException fail(IOException error) {
    if (failure == null) {
      failure = error;
    }
    closeTransport.run();
    return error;
  }

  /** Sends a fatal alert (best effort), closes the transport and returns the error to throw. */
  private TlsAlertException alertAndFail(int description, String reason) {
    TlsAlertException error = new TlsAlertException(description, reason, false);
    boolean locked = false;
    boolean sent = false;
    try {
      locked = writeLock.tryLock(1, TimeUnit.SECONDS);
      if (locked && failure == null && !closeNotifySent) {
        byte[] alert = {ALERT_LEVEL_FATAL, (byte) description};
        writeRecord(RecordProtection.CONTENT_ALERT, alert, 0, alert.length);
        out.flush();
        sent = true;
      }
    } catch (IOException e) {
      // The alert is a courtesy; the connection fails either way.
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } finally {
      if (locked) {
        writeLock.unlock();
      }
    }
    if (failure == null) {
      failure = error;
    }
    (sent ? closeAfterAlert : closeTransport).run();
    Arrays.fill(plaintext, (byte) 0);
    return error;
  }
}
