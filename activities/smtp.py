"""SMTP transport: hands a built message to the configured server and says whether a failure is worth retrying."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property

import aiosmtplib

from printroom.activities.addresses import AddressError, MailAddress, mail_address
from printroom.activities.smtp_pool import Session, SessionPool, quit_quietly
from printroom.activities.tls import certificate_refused, tls_context
from printroom.settings import SmtpSettings


# Seconds a reused session has to answer RSET before a new one is opened instead.
RSET_TIMEOUT = 5.0


class DeliveryError(Exception):
    """The server did not take the message. `permanent` failures need a person; the others pass with time.
    `uncertain`: the message data was sent but no reply came, so the server may have kept it."""

    def __init__(
        self, message: str, *, permanent: bool, uncertain: bool = False, recipients_only: bool = False, retried: str = ""
    ) -> None:
        super().__init__(f"{message}; {retried}" if retried else message)
        # What went wrong, without what the worker does about it (`retried`): a command that retries nothing
        # (`printroom smtp send-test`) says its own advice after it.
        self.what_happened = message
        self.permanent = permanent
        self.uncertain = uncertain
        # Only the recipients were refused (RCPT): the server itself works, and other emails go.
        self.recipients_only = recipients_only


class OpportunisticTlsFailed(Exception):
    """STARTTLS offered but failing, where it was only opportunistic: the session goes on in clear."""


@dataclass
class Transaction:
    """How far a send got: once the message goes to the server, the task that finishes the transaction."""

    finishing: asyncio.Future[Delivery] | None = None


@dataclass(frozen=True)
class Delivery:
    accepted: list[str]
    # Recipients the server refused while it accepted others: address -> the server's reply.
    refused: dict[str, str]


def _reply(code: int, message: str) -> str:
    return f"{code} {message}".strip()


def certificate_advice(settings: SmtpSettings, error: ssl.SSLCertVerificationError) -> str:
    return (
        f"the certificate of {settings.host} is not trusted; set smtp.ca_file to the CA that signed it, or pin the "
        "server's own certificate: smtp.ca_file = that certificate, or smtp.tls_fingerprint = its SHA-256, which "
        f"`printroom smtp test` prints ({error.verify_message})"
    )


def certificate_error(error: BaseException) -> ssl.SSLCertVerificationError | None:
    while error is not None:
        if isinstance(error, ssl.SSLCertVerificationError):
            return error
        error = error.__cause__  # type: ignore[assignment]
    return None


class SmtpTransport:
    """Messages over sessions secured and authenticated as the settings say, kept open between messages (the
    pool) unless reuse is off; every new session runs the whole handshake and its checks, the password read then.
    Whoever runs it closes it (`close`, or `async with`): the worker does at shutdown."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._tls = tls_context(settings)
        self._connections = asyncio.Semaphore(settings.max_connections)
        self.pool = SessionPool(settings)
        self.opened = 0  # sessions opened so far (the benchmark's count)

    async def close(self) -> None:
        """QUIT the idle sessions (worker shutdown); a later send opens new ones."""
        await self.pool.close()

    async def __aenter__(self) -> SmtpTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def server(self) -> str:
        return f"{self.settings.host}:{self.settings.effective_port}"

    @cached_property
    def local_hostname(self) -> str:
        """Our EHLO name, looked up once: aiosmtplib would call getfqdn() for every connection."""
        return socket.getfqdn()

    async def secure(self, client: aiosmtplib.SMTP, *, opportunistic: bool = True) -> None:
        """After connect: STARTTLS as configured (or when offered, for security = 'none' with opportunistic_tls),
        the host name of a certificate taken without its chain, then AUTH (the settings allow it only over verified
        TLS, or with allow_plaintext_auth). Raises DeliveryError (permanent: the settings or the server must
        change), or OpportunisticTlsFailed."""
        settings = self.settings
        await _greet(client)
        if settings.security == "starttls" and not client.supports_extension("starttls"):
            raise DeliveryError(f"{self.server} does not offer STARTTLS; check smtp.security", permanent=True)
        if settings.security == "starttls":
            await client.starttls(tls_context=self._tls)
            await _greet(client)
        elif settings.security == "none" and self._tls and opportunistic and client.supports_extension("starttls"):
            try:
                await client.starttls(tls_context=self._tls)
            except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as error:
                raise OpportunisticTlsFailed(str(error)) from error
            await _greet(client)
        tls = client.get_transport_info("ssl_object")
        if tls is not None and (why := certificate_refused(settings, tls.getpeercert(binary_form=True))):
            raise DeliveryError(why, permanent=True)
        if settings.username:
            await client.login(settings.username, await asyncio.to_thread(settings.secret) or "")

    async def send(
        self,
        message: bytes,
        *,
        envelope_from: str,
        recipients: list[str],
        on_accepted: Callable[[Delivery], Awaitable[None]] | None = None,
        transaction: Transaction | None = None,
    ) -> Delivery:
        """Send one message. `on_accepted` runs the moment the server accepts DATA, before QUIT: whatever fails
        after that (QUIT, the connection, this process) cannot make the message count as unsent. Once the message
        is handed over, the rest of the transaction finishes even if the caller is cancelled (`transaction` says
        so, and holds what finishes it): cutting it would leave the server with a message nobody records."""
        async with self._connections:
            return await self._send(message, envelope_from, recipients, on_accepted, transaction or Transaction())

    async def _open(self) -> aiosmtplib.SMTP:
        """A connected, greeted, secured and logged-in session. Opportunistic STARTTLS that fails (an old relay,
        a 454) falls back to a session in clear, as mail servers do among themselves."""
        for opportunistic in (True, False):
            client = aiosmtplib.SMTP(
                hostname=self.settings.host,
                port=self.settings.effective_port,
                local_hostname=self.local_hostname,
                timeout=self.settings.timeout_seconds,
                use_tls=self.settings.security == "tls",
                start_tls=False,  # in `secure`, as the settings say
                tls_context=self._tls,
            )
            try:
                await client.connect()
                await self.secure(client, opportunistic=opportunistic)
                self.opened += 1
                return client
            except OpportunisticTlsFailed:
                client.close()
            except BaseException:
                await quit_quietly(client)
                raise
        raise AssertionError("unreachable: the session in clear does not try TLS")

    async def _send(
        self,
        message: bytes,
        envelope_from: str,
        recipients: list[str],
        on_accepted: Callable[[Delivery], Awaitable[None]] | None,
        transaction: Transaction,
    ) -> Delivery:
        try:
            sender, wanted = mail_address(envelope_from), {r: mail_address(r) for r in recipients}
        except AddressError as error:
            raise DeliveryError(f"{error}; no SMTP server can take it", permanent=True) from None
        session: Session | None = None
        try:
            session = await self._reused()
            if session is not None:
                try:
                    refused = await self._envelope(session.client, sender, wanted)
                except (aiosmtplib.SMTPException, OSError) as error:
                    if not _gone(error):
                        raise
                    # Closed by the server while idle (or a 421): nothing of this message reached it before DATA,
                    # so it goes once more on a new session, within this attempt.
                    session.client.close()
                    session = None
            if session is None:
                session = Session(await self._open())
                refused = await self._envelope(session.client, sender, wanted)
        except BaseException as error:
            if session is not None:
                await self.pool.give_back(session, clean=_in_step(error))
            if isinstance(error, (aiosmtplib.SMTPException, OSError)):
                raise self._failure(error, data_sent=False) from None
            raise
        accepted = [r for r in recipients if r not in refused]
        transaction.finishing = asyncio.ensure_future(
            self._finish(session, message, accepted, refused, on_accepted)
        )
        return await asyncio.shield(transaction.finishing)

    async def _reused(self) -> Session | None:
        """An idle session that answers RSET (a clean envelope, and a sign of life), or None. One the server closed
        meanwhile is dropped without a word: the caller opens a new one."""
        session = self.pool.take()
        if session is None:
            return None
        try:  # a connection a NAT forgot answers nothing: not worth the whole smtp.timeout_seconds
            await session.client.rset(timeout=min(RSET_TIMEOUT, self.settings.timeout_seconds))
        except (aiosmtplib.SMTPException, OSError):
            session.client.close()
            return None
        except BaseException:  # cancelled mid-command: the session's state is unknown
            session.client.close()
            raise
        return session

    async def _envelope(self, client: aiosmtplib.SMTP, sender: MailAddress, wanted: dict[str, MailAddress]) -> dict[str, tuple[int, str]]:
        """MAIL and RCPT: the recipients the server refused (address -> reply); all of them refused raises."""
        utf8 = client.supports_extension("smtputf8")
        if sender.utf8 and not utf8:
            raise DeliveryError(
                f"the sender address {sender.given} is not ASCII and {self.server} does not offer SMTPUTF8; "
                "use an ASCII sender address (sender.address, sender.envelope_from)",
                permanent=True,
            )
        options, encoding = (["SMTPUTF8"], "utf-8") if utf8 and (sender.utf8 or any(a.utf8 for a in wanted.values())) else ([], "ascii")
        await client.mail(sender.wire, options=options, encoding=encoding)
        refused: dict[str, tuple[int, str]] = {}
        for recipient, address in wanted.items():
            if address.utf8 and not utf8:
                refused[recipient] = (553, f"{self.server} does not offer SMTPUTF8, which this address needs")
                continue
            try:
                await client.rcpt(address.wire, encoding=encoding)
            except aiosmtplib.SMTPRecipientRefused as error:
                if error.code == 421:  # the server is closing the session: not a word about this recipient
                    raise
                refused[recipient] = (error.code, error.message)
        if len(refused) == len(wanted):
            replies = {r: _reply(*reply) for r, reply in refused.items()}
            permanent = all(code >= 500 for code, _ in refused.values())
            raise DeliveryError(f"{self.server} refused every recipient: {replies}", permanent=permanent, recipients_only=True)
        return refused

    async def _finish(
        self,
        session: Session,
        message: bytes,
        accepted: list[str],
        refused: dict[str, tuple[int, str]],
        on_accepted: Callable[[Delivery], Awaitable[None]] | None,
    ) -> Delivery:
        """DATA, the server's answer, the record of it, then the session back to the pool (or QUIT): run to the
        end whatever happens to the caller. Never sent again on another session: after the final dot, silence
        may mean the server kept it (the delivery record decides on the next attempt)."""
        clean = False
        try:
            try:
                await session.client.data(message)
            except (aiosmtplib.SMTPException, OSError) as error:
                clean = _in_step(error)  # refused, and said so: the session stays usable
                raise self._failure(error, data_sent=True) from None
            session.messages += 1
            clean = True
            # Accepted: recorded before the session goes back; an error in the callback is ours, not the server's.
            delivery = Delivery(accepted=accepted, refused={a: _reply(code, text) for a, (code, text) in refused.items()})
            if on_accepted is not None:
                await on_accepted(delivery)
            return delivery
        finally:
            await self.pool.give_back(session, clean=clean)

    def _failure(self, error: BaseException, *, data_sent: bool) -> DeliveryError:
        """What an SMTP or network error means for this email: permanent, passing, or unknown after DATA."""
        if isinstance(error, aiosmtplib.SMTPAuthenticationError):
            return DeliveryError(
                f"{self.server} rejected the credentials of {self.settings.username!r} "
                f"({_reply(error.code, error.message)}); check smtp.username and the password",
                permanent=True,
            )
        if isinstance(error, aiosmtplib.SMTPResponseException):
            answered = f"{self.server} answered {_reply(error.code, error.message)}"
            if error.code >= 500:
                return DeliveryError(f"{answered}; fix the settings or the address", permanent=True)
            return DeliveryError(answered, permanent=False, retried="it will be retried")
        if (bad := certificate_error(error)) is not None:
            return DeliveryError(certificate_advice(self.settings, bad), permanent=True)
        if isinstance(error, aiosmtplib.SMTPNotSupported) or "not supported" in str(error):
            # AUTH or STARTTLS missing on the server (aiosmtplib raises either kind): a settings mismatch.
            return DeliveryError(f"{self.server}: {error}; check smtp.security", permanent=True)
        if data_sent:  # a definite reply would have been an SMTPResponseException: this is silence
            return DeliveryError(
                f"{self.server} took the message but gave no answer ({error or type(error).__name__})",
                permanent=False,
                uncertain=True,
                retried="it will be retried, and may arrive twice",
            )
        return DeliveryError(
            f"cannot reach the SMTP server {self.server}: {error or type(error).__name__}",
            permanent=False,
            retried="it will be retried",
        )


async def _greet(client: aiosmtplib.SMTP) -> None:
    """EHLO (HELO for an old server), again after STARTTLS: the extensions offered may change with TLS."""
    if client.is_ehlo_or_helo_needed:
        try:
            await client.ehlo()
        except aiosmtplib.SMTPHeloError:
            await client.helo()


def _in_step(error: BaseException) -> bool:
    """A definite refusal for good (5xx) or a refusal of ours leaves the session usable after RSET; a 4xx may be
    about the whole connection (421 closing, 452 or a rate limit), and anything else (a drop, a timeout, a
    cancel) leaves it in doubt: such a session is closed, not given back."""
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return not 400 <= error.code < 500
    return isinstance(error, DeliveryError)


def _gone(error: BaseException) -> bool:
    """The session ended under us: a drop, a timeout, or a 421 (the server closing it). Before DATA, nothing of the
    message can have been kept."""
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return error.code == 421
    return isinstance(error, OSError)
