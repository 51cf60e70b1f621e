// TypeScript declarations for the mailpool Node client. Messages follow the protos in
// proto/mailpool/v1 with camelCase field names (as @grpc/proto-loader produces them):
// enums are their names as strings, 64-bit integers are numbers, bytes are Buffers, and
// every field is present in responses (proto3 defaults).
import type { ChannelCredentials, ChannelOptions, Metadata, status as grpcStatus } from '@grpc/grpc-js';

export declare const DEFAULT_ADDRESS: string;
export declare const SESSION_HEADER: string;
export declare const status: typeof grpcStatus;

/** { seconds, nanos } as in google.protobuf.Duration / Timestamp. */
export interface Duration { seconds: number | string; nanos: number; }
export interface Timestamp { seconds: number | string; nanos: number; }
/** Seconds as a number (fractions allowed). */
export type Seconds = number;

export type SecurityName = 'SECURITY_UNSPECIFIED' | 'SECURITY_PLAIN' | 'SECURITY_STARTTLS' |
  'SECURITY_IMPLICIT_TLS';
/** Accepted wherever a security is given: the enum name or plain / starttls / tls. */
export type SecurityInput = SecurityName | 'plain' | 'starttls' | 'tls' | 'implicit_tls' | 'ssl';
export declare const Security: Readonly<{ PLAIN: 'SECURITY_PLAIN'; STARTTLS: 'SECURITY_STARTTLS';
  IMPLICIT_TLS: 'SECURITY_IMPLICIT_TLS' }>;
export type ProtocolName = 'PROTOCOL_UNSPECIFIED' | 'PROTOCOL_IMAP' | 'PROTOCOL_POP3' |
  'PROTOCOL_SMTP' | 'PROTOCOL_POP3_SMTP';
export type AuthMechanismName = 'AUTH_MECHANISM_UNSPECIFIED' | 'AUTH_MECHANISM_COMMAND' |
  'AUTH_MECHANISM_PLAIN' | 'AUTH_MECHANISM_LOGIN' | 'AUTH_MECHANISM_CRAM_MD5' |
  'AUTH_MECHANISM_APOP' | 'AUTH_MECHANISM_XOAUTH2' | 'AUTH_MECHANISM_OAUTHBEARER' |
  'AUTH_MECHANISM_NONE' | 'AUTH_MECHANISM_SCRAM_SHA_1' | 'AUTH_MECHANISM_SCRAM_SHA_256';
/** A mechanism: its enum name or the short form ('PLAIN', 'cram-md5', 'XOAUTH2', ...). */
export type MechanismInput = AuthMechanismName | string;
export type SessionStateName = 'SESSION_STATE_UNSPECIFIED' | 'SESSION_STATE_CONNECTING' |
  'SESSION_STATE_READY' | 'SESSION_STATE_BUSY' | 'SESSION_STATE_RECONNECTING' |
  'SESSION_STATE_BROKEN' | 'SESSION_STATE_CLOSED';
export type ViewName = 'MESSAGE_VIEW_UNSPECIFIED' | 'MESSAGE_VIEW_BASIC' | 'MESSAGE_VIEW_HEADERS' |
  'MESSAGE_VIEW_FULL' | 'MESSAGE_VIEW_RAW';
export type ViewInput = ViewName | 'BASIC' | 'HEADERS' | 'FULL' | 'RAW';
export declare const View: Readonly<{ BASIC: 'MESSAGE_VIEW_BASIC'; HEADERS: 'MESSAGE_VIEW_HEADERS';
  FULL: 'MESSAGE_VIEW_FULL'; RAW: 'MESSAGE_VIEW_RAW' }>;
export type OrderInput = 'MESSAGE_ORDER_NEWEST_FIRST' | 'MESSAGE_ORDER_OLDEST_FIRST' |
  'NEWEST_FIRST' | 'OLDEST_FIRST';
export type DeleteModeInput = 'EXPUNGE' | 'FLAG_ONLY' | 'MOVE_TO_TRASH' | `DELETE_MODE_${string}`;
export type FlagOperationInput = 'ADD' | 'REMOVE' | 'REPLACE' | `FLAG_OPERATION_${string}`;
export type FolderRoleName = 'FOLDER_ROLE_UNSPECIFIED' | 'FOLDER_ROLE_INBOX' | 'FOLDER_ROLE_ALL' |
  'FOLDER_ROLE_ARCHIVE' | 'FOLDER_ROLE_DRAFTS' | 'FOLDER_ROLE_FLAGGED' | 'FOLDER_ROLE_JUNK' |
  'FOLDER_ROLE_SENT' | 'FOLDER_ROLE_TRASH' | 'FOLDER_ROLE_IMPORTANT';
export type SendStateName = 'SEND_STATE_UNSPECIFIED' | 'SEND_STATE_QUEUED' | 'SEND_STATE_PENDING' |
  'SEND_STATE_SENT' | 'SEND_STATE_ERROR' | 'SEND_STATE_CANCELLED';
export type CheckResultName = 'CHECK_RESULT_UNSPECIFIED' | 'CHECK_RESULT_VALID' |
  'CHECK_RESULT_INVALID' | 'CHECK_RESULT_UNKNOWN';

// ---- session.proto --------------------------------------------------------------------
export interface Connection {
  protocol: ProtocolName; host: string; port: number; security: SecurityName;
  tlsVersion: string; tlsCipher: string; tlsVerified: boolean; greeting: string;
  capabilities: string[]; mechanism: AuthMechanismName;
}
/** The daemon's description of a session (the proto message mailpool.v1.Session). */
export interface SessionInfo {
  id: string; name: string; protocol: ProtocolName; state: SessionStateName; user: string;
  connections: Connection[]; timeout: Duration | null; timeoutOverridden: boolean;
  createTime: Timestamp | null; lastUseTime: Timestamp | null; currentFolder: string;
  asynchronous: boolean; reconnectCount: number; lastError: string;
  /** The caller identity that owns the session: a token's name, 'uid:N', 'cert:CN' or 'local'. */
  owner: string;
}

/** Options of the start* calls. */
export interface StartOptions {
  host: string;
  /** 0 or absent: the protocol default for the security. */
  port?: number;
  security?: SecurityInput;
  user?: string;
  password?: string;
  /** OAuth2 access token (XOAUTH2 / OAUTHBEARER) instead of a password. */
  token?: string;
  /** OAuth2 refresh token instead: the daemon gets and renews the access tokens. */
  oauth2Refresh?: OAuth2Refresh;
  mechanism?: MechanismInput;
  allowInsecureAuth?: boolean;
  caPem?: string;
  caFile?: string;
  serverName?: string;
  dangerouslySkipVerification?: boolean;
  connectTimeout?: Seconds;
  /** Address the session by this name later. */
  name?: string;
  /** Server-silence timeout of the session (default: the daemon's). */
  sessionTimeout?: Seconds;
  /** Deadline of the StartSession call itself (default: the client's startTimeout). */
  timeout?: Seconds | null;
}
/** Refreshable OAuth2 credentials: `provider` (the daemon's --oauth2_providers_file) or
 * `tokenEndpoint` + `clientId` (+ `clientSecret`). */
export interface OAuth2Refresh {
  refreshToken: string;
  provider?: string;
  tokenEndpoint?: string;
  clientId?: string;
  clientSecret?: string;
  scopes?: string;
}
/** New credentials of a session (Session.updateCredentials). */
export interface CredentialsUpdate {
  user?: string;
  password?: string;
  /** OAuth2 access token (XOAUTH2 / OAUTHBEARER) instead of a password. */
  token?: string;
  oauth2Refresh?: OAuth2Refresh;
  mechanism?: MechanismInput;
  allowInsecureAuth?: boolean;
}
export interface ImapStartOptions extends StartOptions { folder?: string; }
export interface SmtpStartOptions extends StartOptions { asynchronous?: boolean; ehloName?: string; }
export interface Pop3SmtpStartOptions extends SmtpStartOptions {
  smtpHost?: string; smtpPort?: number; smtpSecurity?: SecurityInput;
}

// ---- message.proto --------------------------------------------------------------------
export interface Address { name: string; address: string; }
export type AddressInput = string | [string, string] | { name?: string; address: string };
export interface Header { name: string; value: string; }
export interface Flags {
  seen?: boolean; answered?: boolean; flagged?: boolean; deleted?: boolean; draft?: boolean;
  recent?: boolean; keywords?: string[];
}
export interface Attachment {
  fileName: string; contentType: string; content: Buffer; contentId: string; size: number;
  disposition: string; partId: string; contentOmitted: boolean;
}
/** Chunks of one attachment (Session.streamAttachment), iterable once. */
export declare class AttachmentStream implements AsyncIterable<Buffer> {
  /** The part's metadata, from the first response; null if none was sent. */
  attachment(): Promise<Attachment | null>;
  [Symbol.asyncIterator](): AsyncIterator<Buffer>;
}
export interface EmailMessage {
  id: string; from: Address | null; sender: Address | null; replyTo: Address[]; to: Address[];
  cc: Address[]; bcc: Address[]; subject: string; textBody: string; htmlBody: string;
  attachments: Attachment[]; headers: Header[]; messageId: string; inReplyTo: string[];
  references: string[]; date: Timestamp | null; dateUtcOffsetMinutes: number; priority: string;
  sensitivity: string; deliveryReceipt: boolean; readReceipt: boolean;
  readReceiptTo: Address | null; flags: Flags | null; size: number;
  receiveTime: Timestamp | null; source: Buffer; folder: string; uid: number; uidl: string;
}
/** A message to send or build: any subset of the fields. */
export type EmailMessageInput = Partial<Omit<EmailMessage, 'attachments'>> & {
  attachments?: Partial<Attachment>[];
};
export interface BuildOptions {
  headerEncoding?: string; includeBccHeader?: boolean; regenerateMessageId?: boolean;
  messageIdDomain?: string;
}
export interface BuildSourceResponse { source: Buffer; messageId: string; }
export interface ParseSourceResponse { message: EmailMessage; warnings: string[]; }

// ---- mailbox.proto --------------------------------------------------------------------
export interface MailboxStatus {
  folder: string; messageCount: number; unreadCount: number; size?: number; recentCount: number;
  uidValidity: number; uidNext: number; highestModseq: number; readOnly: boolean;
  snapshotTime: Timestamp | null; pendingDeletions: number; keywords: string[];
  canCreateKeywords: boolean;
}
export interface ListOptions {
  folder?: string; view?: ViewInput; order?: OrderInput; unreadOnly?: boolean; pageSize?: number;
  /** Stop after this many messages. */
  limit?: number; maxAttachmentBytes?: number; markSeen?: boolean; timeout?: Seconds | null;
}
export interface ListMessagesResponse {
  messages: EmailMessage[]; nextPageToken: string; totalCount: number;
}
export interface SearchCriteria {
  subject?: string; from?: string; to?: string; cc?: string; bcc?: string; recipient?: string;
  body?: string; text?: string; headers?: { name: string; value?: string }[]; messageId?: string;
  since?: Timestamp; before?: Timestamp; sentSince?: Timestamp; sentBefore?: Timestamp;
  larger?: number; smaller?: number; flagsSet?: Flags; flagsUnset?: Flags; unread?: boolean;
  allOf?: SearchCriteria[]; anyOf?: SearchCriteria[]; noneOf?: SearchCriteria[];
}
export interface DeleteMessagesResponse {
  deletedCount: number; pendingUntilQuit: boolean; trashed: MessageIdMapping[];
}
export interface Folder {
  name: string; delimiter: string; attributes: string[]; role: FolderRoleName;
  subscribed: boolean; selectable: boolean; status: MailboxStatus | null;
}
export interface MessageIdMapping { sourceId: string; newId: string; }
export interface MessageFlags { id: string; flags: Flags; }
export interface AppendMessageResponse { id: string; size: number; }
export interface WatchMailboxResponse {
  type: string; id: string; flags: Flags | null; message: EmailMessage | null;
  status: MailboxStatus | null; time: Timestamp | null;
}
export interface RefreshResponse {
  status: MailboxStatus; committedDeletions: number; serverReply: string;
}

// ---- send.proto -----------------------------------------------------------------------
export interface Envelope { mailFrom?: string; rcptTo?: string[]; requestDsn?: boolean; }
export interface RecipientResult {
  address: string; accepted: boolean; replyCode: number; enhancedStatus: string; serverReply: string;
}
export interface SendMessageResponse {
  state: SendStateName; sendId: string; recipients: RecipientResult[]; serverReply: string;
  messageId: string; size: number;
}
export interface SendStatus {
  sendId: string; sessionId: string; state: SendStateName; detail: string; attempts: number;
  createTime: Timestamp | null; updateTime: Timestamp | null; nextAttemptTime: Timestamp | null;
  messageId: string; subject: string; size: number; recipients: RecipientResult[];
  serverReply: string; possiblySentBeforeCrash: boolean;
}
export interface CheckAddressResponse {
  result: CheckResultName; reason: string; parsed: Address | null; replyCode: number;
  serverReply: string;
}

// ---- errors ---------------------------------------------------------------------------
export interface ErrorDetail { reason: string; protocol: ProtocolName; command: string; serverReply: string; }
/** google.rpc.ErrorInfo: why the call failed. */
export interface ErrorInfo {
  /** Stable reason, e.g. 'AUTH_FAILED', 'INVALID_FIELD', 'CONNECT_FAILED'. */
  reason: string;
  /** 'mailpool.dev' for every error of the daemon. */
  domain: string;
  /** server_reply, command (redacted), protocol ('imap', 'pop3', 'smtp') when known. */
  metadata: { [key: string]: string };
}
/** google.rpc.BadRequest.FieldViolation: a request field that failed validation. */
export interface FieldViolation { field: string; description: string; }
/** google.rpc.Status as decoded from grpc-status-details-bin. */
export interface RpcStatus { code: number; message: string; details: { typeUrl: string; value: Buffer }[]; }
/** Every failed call rejects with this. */
export declare class MailpoolError extends Error {
  /** Numeric gRPC code; compare with mailpool.status.UNAUTHENTICATED etc. */
  code: number;
  /** The code's name: 'UNAUTHENTICATED', 'NOT_FOUND', 'UNIMPLEMENTED', ... */
  codeName: string;
  /** The status message (contains the mail server's reply line, if any). */
  details: string;
  /** The mailpool.v1.ErrorDetail from the `mailpool-error-bin` trailer, or null. */
  detail: ErrorDetail | null;
  /** The google.rpc.ErrorInfo from grpc-status-details-bin, or null. */
  errorInfo: ErrorInfo | null;
  /** Seconds to wait before retrying (google.rpc.RetryInfo); null when retrying does not help. */
  retryDelay: number | null;
  /** google.rpc.BadRequest's field violations (INVALID_ARGUMENT); empty if none. */
  fieldViolations: FieldViolation[];
  /** The whole google.rpc.Status, or null. */
  rpcStatus: RpcStatus | null;
  metadata?: Metadata;
  readonly reason: string;
  readonly domain: string;
  readonly serverReply: string;
  readonly command: string;
}

/** The caller token the options select (token, tokenFile, $MAILPOOL_TOKEN, $MAILPOOL_TOKEN_FILE), or null. */
export declare function resolveToken(options?: { token?: string; tokenFile?: string; fromEnvironment?: boolean }): string | null;

interface CallOptions { timeout?: Seconds | null; }

export interface ClientOptions {
  /** Deadline of each call in seconds (default 30; null: none). Streams have none. */
  timeout?: Seconds | null;
  /** Deadline of StartSession (default 120). */
  startTimeout?: Seconds | null;
  /** Caller token, sent as `authorization: Bearer <token>` (default $MAILPOOL_TOKEN). */
  token?: string;
  /** File holding the caller token (default $MAILPOOL_TOKEN_FILE). */
  tokenFile?: string;
  /** PEM file of the CA(s) that sign the daemon's certificate: TLS to the daemon. */
  ca?: string;
  /** PEM files of a client certificate and its key: mutual TLS. */
  cert?: string;
  key?: string;
  /** TLS with the system's CAs (implied by ca, cert, key). */
  tls?: boolean;
  /** Name to verify in the daemon's certificate (default: the address's host). */
  tlsServerName?: string;
  /** Channel credentials of your own (then ca, cert, key and tls are not used). */
  credentials?: ChannelCredentials;
  channelOptions?: ChannelOptions;
}

export declare class Client {
  constructor(address?: string, options?: ClientOptions);
  readonly address: string;
  timeout: Seconds | null;
  close(): void;

  startSession(request: object, options?: CallOptions): Promise<Session>;
  startImap(options: ImapStartOptions): Promise<Session>;
  startPop3(options: StartOptions): Promise<Session>;
  startSmtp(options: SmtpStartOptions): Promise<Session>;
  startPop3Smtp(options: Pop3SmtpStartOptions): Promise<Session>;
  /** Runs fn(session), then closes the session whatever happens. */
  withSession<T>(session: Session | Promise<Session>, fn: (s: Session) => Promise<T>): Promise<T>;
  session(idOrName: string, options?: CallOptions): Promise<Session>;
  getSession(idOrName: string, options?: CallOptions): Promise<SessionInfo>;
  closeSession(idOrName: string, options?: CallOptions): Promise<string>;
  /** The caller's sessions; allCallers: every caller's (admin callers only, else PERMISSION_DENIED). */
  sessions(options?: { pageSize?: number; limit?: number; allCallers?: boolean } & CallOptions): AsyncGenerator<SessionInfo>;
  getDefaultTimeout(options?: CallOptions): Promise<Seconds>;
  setDefaultTimeout(value: Seconds, options?: CallOptions): Promise<Seconds>;

  buildSource(message: EmailMessageInput, options?: { options?: BuildOptions } & CallOptions): Promise<BuildSourceResponse>;
  parseSource(source: Buffer | string, options?: { includeSource?: boolean; omitAttachmentContent?: boolean } & CallOptions): Promise<ParseSourceResponse>;
  checkAddress(address: string, options?: { strict?: boolean } & CallOptions): Promise<CheckAddressResponse>;
  sendStatus(sendId: string, options?: { session?: string } & CallOptions): Promise<SendStatus>;
  cancelSend(sendId: string, options?: { session?: string } & CallOptions): Promise<SendStatus>;
  outbox(options?: { session?: string; states?: SendStateName[]; pageSize?: number; limit?: number } & CallOptions): AsyncGenerator<SendStatus>;
  watchSends(options?: { session?: string; sendIds?: string[]; includeCurrent?: boolean } & CallOptions): AsyncGenerator<SendStatus>;

  /** Low level: a unary call on one of the stubs (sessionsStub, mailboxStub, sendStub, messageStub). */
  unary<T = any>(stub: any, method: string, request: object, options?: { timeout?: Seconds | null; sessionId?: string }): Promise<T>;
  stream<T = any>(stub: any, method: string, request: object, options?: { timeout?: Seconds | null; sessionId?: string }): AsyncGenerator<T>;
  readonly sessionsStub: any;
  readonly mailboxStub: any;
  readonly sendStub: any;
  readonly messageStub: any;
}

export declare class Session {
  readonly client: Client;
  readonly id: string;
  readonly name: string;
  readonly protocol: ProtocolName;
  /** The description from the last start / info() / setTimeout(), without a call. */
  lastInfo: SessionInfo;
  closed: boolean;

  info(options?: CallOptions): Promise<SessionInfo>;
  /** LOGOUT/QUIT; resolves to the server's reply ('' if already closed). */
  close(options?: CallOptions): Promise<string>;
  /** Forget the handle without closing the session; returns its ID. */
  release(): string;
  /** This session's server-silence timeout; null or 0: follow the daemon default. */
  setTimeout(value: Seconds | null, options?: CallOptions): Promise<SessionInfo>;
  /**
   * New credentials for every later login (UpdateSession): a refreshed token, a changed
   * password. `user` must be the session's (absent: the session's). Logged-in connections
   * stay; a session whose login was refused logs in again during the call.
   */
  updateCredentials(credentials: CredentialsUpdate, options?: CallOptions): Promise<SessionInfo>;

  status(folder?: string, options?: CallOptions): Promise<MailboxStatus>;
  listMessages(options?: ListOptions & { pageToken?: string }): Promise<ListMessagesResponse>;
  messages(options?: ListOptions): AsyncGenerator<EmailMessage>;
  getMessage(id: string, options?: { view?: ViewInput; maxAttachmentBytes?: number; markSeen?: boolean } & CallOptions): Promise<EmailMessage>;
  streamMessage(id: string, options?: { offset?: number; chunkSize?: number; markSeen?: boolean } & CallOptions): AsyncGenerator<Buffer>;
  /** GetAttachment streamed: chunks of the decoded content; metadata via attachment(). */
  streamAttachment(id: string, options: { partId?: string; contentId?: string; chunkSize?: number } & CallOptions): AttachmentStream;
  /** GetAttachment joined into one Buffer. */
  getAttachment(id: string, options: { partId?: string; contentId?: string; chunkSize?: number } & CallOptions): Promise<{ attachment: Attachment | null; data: Buffer }>;
  search(criteria?: SearchCriteria, options?: Omit<ListOptions, 'unreadOnly' | 'markSeen'>): AsyncGenerator<EmailMessage>;
  delete(ids: string | string[], options?: { mode?: DeleteModeInput } & CallOptions): Promise<DeleteMessagesResponse>;
  folders(options?: { pattern?: string; subscribedOnly?: boolean; includeStatus?: boolean } & CallOptions): Promise<Folder[]>;
  selectFolder(folder: string, options?: { readOnly?: boolean } & CallOptions): Promise<MailboxStatus>;
  createFolder(folder: string, options?: { subscribe?: boolean; role?: string } & CallOptions): Promise<Folder>;
  deleteFolder(folder: string, options?: CallOptions): Promise<void>;
  renameFolder(folder: string, newName: string, options?: CallOptions): Promise<Folder>;
  copy(ids: string | string[], destinationFolder: string, options?: CallOptions): Promise<MessageIdMapping[]>;
  move(ids: string | string[], destinationFolder: string, options?: CallOptions): Promise<MessageIdMapping[]>;
  updateFlags(ids: string | string[], operation: FlagOperationInput, flags: Flags, options?: CallOptions): Promise<MessageFlags[]>;
  markRead(ids: string | string[], read?: boolean, options?: CallOptions): Promise<MessageFlags[]>;
  append(folder: string, content: Buffer | string | EmailMessageInput, options?: { flags?: Flags; receiveTime?: Date; buildOptions?: BuildOptions } & CallOptions): Promise<AppendMessageResponse>;
  expunge(options?: { folder?: string; ids?: string[] } & CallOptions): Promise<string[]>;
  watch(options?: { folder?: string; view?: ViewInput; pollInterval?: Seconds } & CallOptions): AsyncGenerator<WatchMailboxResponse>;
  refresh(options?: CallOptions): Promise<RefreshResponse>;

  send(message: EmailMessageInput | null, options?: { source?: Buffer | string; envelope?: Envelope; idempotencyKey?: string; requireAllRecipients?: boolean; buildOptions?: BuildOptions } & CallOptions): Promise<SendMessageResponse>;
  sendStatus(sendId: string, options?: CallOptions): Promise<SendStatus>;
  cancelSend(sendId: string, options?: CallOptions): Promise<SendStatus>;
  outbox(options?: { states?: SendStateName[]; pageSize?: number; limit?: number } & CallOptions): AsyncGenerator<SendStatus>;
  watchSends(options?: { sendIds?: string[]; includeCurrent?: boolean } & CallOptions): AsyncGenerator<SendStatus>;
  checkAddress(address: string, options?: { allowVrfy?: boolean } & CallOptions): Promise<CheckAddressResponse>;
  /** `await using s = await client.startImap(...)`: closes the session (errors ignored). */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Builds an EmailMessage from plain values; other fields pass through. */
export declare function message(fields: {
  from: AddressInput; to?: AddressInput | AddressInput[]; cc?: AddressInput | AddressInput[];
  bcc?: AddressInput | AddressInput[]; replyTo?: AddressInput | AddressInput[]; subject?: string;
  text?: string; html?: string; headers?: ([string, string] | Header)[];
  attachments?: Partial<Attachment>[];
} & Omit<EmailMessageInput, 'from' | 'to' | 'cc' | 'bcc' | 'replyTo' | 'headers' | 'attachments'>
): EmailMessageInput;
export declare function address(value: AddressInput): Address;
/** A Timestamp as a Date, or null when unset. */
export declare function toDate(ts: Timestamp | null | undefined): Date | null;
