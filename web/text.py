"""What the pages say, in each language the print room's emails are written in (the link names the language)."""

from __future__ import annotations

from collections.abc import Mapping

TEXT: Mapping[str, Mapping[str, str]] = {
    "en": {
        "approve_title": "Approve order {order}?",
        "reject_title": "Reject order {order}?",
        "asked": "You, {approver}, are asked to decide on this order. Nothing is decided until you confirm below.",
        "order": "Order",
        "customer": "Customer",
        "price": "Price",
        "budget": "Budget",
        "over_budget": "over the budget",
        "job": "Job",
        "product": "Product",
        "quantity": "Quantity",
        "answer_by": "Please answer by",
        "comment": "Comment (optional, at most {max} characters)",
        "approve_button": "Confirm: approve the order",
        "reject_button": "Confirm: reject the order",
        "approved_title": "Order {order} is approved",
        "rejected_title": "Order {order} is rejected",
        "done": "Thank you. Your decision is recorded and the customer is told. You can close this page.",
        "already": "Order {order} was already {status} by {by} on {when}. Your answer was not recorded.",
        "ended": "The approval of order {order} has ended ({status}, {when}). Your answer was not recorded.",
        "approved": "approved",
        "rejected": "rejected",
        "expired": "expired",
        "cancelled": "cancelled",
        "refused_title": "Your answer was not recorded",
        "forbidden_title": "This link cannot be used",
        "tampered": "The link was changed, or cut when it was copied. Open it again from the email, whole.",
        "expired_link": "The link has expired ({when}): the approvers are no longer waited for. Please contact the print room.",
        "malformed": "This is not a link of the print room's.",
        "not_approver": "This link is for {approver}, who is not asked to approve order {order} (it is asked of {asked}).",
        "other_decision": "This page asks to {asked}; the form sent asked to {sent}. Open the link from the email again.",
        "other_order": "This link is for order {order}; the form sent was for order {sent}.",
        "no_token": "The address has no link token. Open the link from the email again.",
        "no_approval_title": "No approval is waiting",
        "no_approval": "No approval of order {order} is waiting. It may have been withdrawn, or the order never needed one.",
        "bad_form_title": "The form could not be read",
        "comment_too_long": "The comment has {length} characters; at most {max} are taken. Please shorten it.",
        "unavailable_title": "Please try again in a few minutes",
        "unavailable": "The print room's system cannot be reached just now. Nothing was recorded and nothing is lost: "
        "open the link from the email again in a few minutes.",
        "not_found_title": "Page not found",
        "not_found": "There is no page at this address.",
        "draft_title": "Draft {draft} of order {order}",
        "draft_held": "Held for an operator: it is sent only when someone sends it from the Temporal Web UI or the "
        "command line. This view is read-only.",
        "draft_gone_title": "This draft is no longer waiting",
        "draft_gone": "The draft of order {order} is no longer waiting: it was sent or discarded.",
        "from": "From",
        "to": "To",
        "cc": "Cc",
        "subject": "Subject",
        "attachments": "Attachments",
        "created": "Held since",
        "reason": "Held because",
        "no_body": "This draft is held without its HTML; it is rendered when it is sent.",
        "images_note": "Embedded images (cid:) are shown by mail clients only.",
    },
    "fr": {
        "approve_title": "Approuver la commande {order} ?",
        "reject_title": "Refuser la commande {order} ?",
        "asked": "Vous, {approver}, êtes sollicité(e) pour décider de cette commande. Rien n'est décidé tant que vous "
        "n'avez pas confirmé ci-dessous.",
        "order": "Commande",
        "customer": "Client",
        "price": "Prix",
        "budget": "Budget",
        "over_budget": "au-delà du budget",
        "job": "Travail",
        "product": "Produit",
        "quantity": "Quantité",
        "answer_by": "Merci de répondre avant le",
        "comment": "Commentaire (facultatif, {max} caractères au plus)",
        "approve_button": "Confirmer : approuver la commande",
        "reject_button": "Confirmer : refuser la commande",
        "approved_title": "La commande {order} est approuvée",
        "rejected_title": "La commande {order} est refusée",
        "done": "Merci. Votre décision est enregistrée et le client est prévenu. Vous pouvez fermer cette page.",
        "already": "La commande {order} a déjà été {status} par {by} le {when}. Votre réponse n'a pas été enregistrée.",
        "ended": "L'approbation de la commande {order} est terminée ({status}, {when}). Votre réponse n'a pas été "
        "enregistrée.",
        "approved": "approuvée",
        "rejected": "refusée",
        "expired": "expirée",
        "cancelled": "annulée",
        "refused_title": "Votre réponse n'a pas été enregistrée",
        "forbidden_title": "Ce lien ne peut pas être utilisé",
        "tampered": "Le lien a été modifié, ou coupé lors d'un copier-coller. Ouvrez-le à nouveau depuis l'email, en entier.",
        "expired_link": "Le lien a expiré ({when}) : les approbateurs ne sont plus attendus. Merci de contacter la salle "
        "d'impression.",
        "malformed": "Ce lien n'est pas un lien de la salle d'impression.",
        "not_approver": "Ce lien est celui de {approver}, qui n'est pas sollicité(e) pour la commande {order} "
        "(l'approbation est demandée à {asked}).",
        "other_decision": "Cette page demande de {asked} ; le formulaire envoyé demandait de {sent}. Ouvrez à nouveau le "
        "lien depuis l'email.",
        "other_order": "Ce lien concerne la commande {order} ; le formulaire envoyé concernait la commande {sent}.",
        "no_token": "L'adresse ne contient pas de jeton. Ouvrez à nouveau le lien depuis l'email.",
        "no_approval_title": "Aucune approbation en attente",
        "no_approval": "Aucune approbation de la commande {order} n'est en attente. Elle a peut-être été retirée, ou la "
        "commande n'en a jamais eu besoin.",
        "bad_form_title": "Le formulaire n'a pas pu être lu",
        "comment_too_long": "Le commentaire compte {length} caractères ; {max} au plus sont acceptés. Merci de le "
        "raccourcir.",
        "unavailable_title": "Merci de réessayer dans quelques minutes",
        "unavailable": "Le système de la salle d'impression est injoignable pour le moment. Rien n'a été enregistré et rien "
        "n'est perdu : ouvrez à nouveau le lien depuis l'email dans quelques minutes.",
        "not_found_title": "Page introuvable",
        "not_found": "Il n'y a pas de page à cette adresse.",
        "draft_title": "Brouillon {draft} de la commande {order}",
        "draft_held": "En attente d'un opérateur : il n'est envoyé que si quelqu'un l'envoie depuis l'interface web de "
        "Temporal ou la ligne de commande. Cette vue est en lecture seule.",
        "draft_gone_title": "Ce brouillon n'est plus en attente",
        "draft_gone": "Le brouillon de la commande {order} n'est plus en attente : il a été envoyé ou abandonné.",
        "from": "De",
        "to": "À",
        "cc": "Cc",
        "subject": "Objet",
        "attachments": "Pièces jointes",
        "created": "En attente depuis",
        "reason": "Retenu parce que",
        "no_body": "Ce brouillon est conservé sans son HTML ; il est produit au moment de l'envoi.",
        "images_note": "Les images intégrées (cid:) ne s'affichent que dans les logiciels de messagerie.",
    },
    "de": {
        "approve_title": "Auftrag {order} freigeben?",
        "reject_title": "Auftrag {order} ablehnen?",
        "asked": "Sie, {approver}, sind gebeten, über diesen Auftrag zu entscheiden. Entschieden ist erst, wenn Sie "
        "unten bestätigen.",
        "order": "Auftrag",
        "customer": "Kunde",
        "price": "Preis",
        "budget": "Budget",
        "over_budget": "über dem Budget",
        "job": "Position",
        "product": "Produkt",
        "quantity": "Menge",
        "answer_by": "Bitte antworten Sie bis",
        "comment": "Kommentar (freiwillig, höchstens {max} Zeichen)",
        "approve_button": "Bestätigen: Auftrag freigeben",
        "reject_button": "Bestätigen: Auftrag ablehnen",
        "approved_title": "Auftrag {order} ist freigegeben",
        "rejected_title": "Auftrag {order} ist abgelehnt",
        "done": "Vielen Dank. Ihre Entscheidung ist erfasst, und der Kunde wird informiert. Sie können diese Seite schließen.",
        "already": "Auftrag {order} wurde bereits am {when} von {by} {status}. Ihre Antwort wurde nicht erfasst.",
        "ended": "Die Freigabe von Auftrag {order} ist beendet ({status}, {when}). Ihre Antwort wurde nicht erfasst.",
        "approved": "freigegeben",
        "rejected": "abgelehnt",
        "expired": "abgelaufen",
        "cancelled": "storniert",
        "refused_title": "Ihre Antwort wurde nicht erfasst",
        "forbidden_title": "Dieser Link kann nicht verwendet werden",
        "tampered": "Der Link wurde verändert oder beim Kopieren abgeschnitten. Öffnen Sie ihn erneut und vollständig aus "
        "der E-Mail.",
        "expired_link": "Der Link ist abgelaufen ({when}): auf die Freigebenden wird nicht mehr gewartet. Bitte wenden Sie "
        "sich an die Druckerei.",
        "malformed": "Dies ist kein Link der Druckerei.",
        "not_approver": "Dieser Link gehört {approver}, der/die für Auftrag {order} nicht angefragt ist (angefragt: {asked}).",
        "other_decision": "Diese Seite fragt nach „{asked}“; das gesendete Formular nach „{sent}“. Öffnen Sie den Link "
        "erneut aus der E-Mail.",
        "other_order": "Dieser Link gilt für Auftrag {order}; das gesendete Formular für Auftrag {sent}.",
        "no_token": "Die Adresse enthält kein Link-Token. Öffnen Sie den Link erneut aus der E-Mail.",
        "no_approval_title": "Keine Freigabe offen",
        "no_approval": "Für Auftrag {order} ist keine Freigabe offen. Sie wurde vielleicht zurückgezogen, oder der Auftrag "
        "brauchte nie eine.",
        "bad_form_title": "Das Formular konnte nicht gelesen werden",
        "comment_too_long": "Der Kommentar hat {length} Zeichen; höchstens {max} werden angenommen. Bitte kürzen Sie ihn.",
        "unavailable_title": "Bitte versuchen Sie es in einigen Minuten erneut",
        "unavailable": "Das System der Druckerei ist gerade nicht erreichbar. Nichts wurde erfasst und nichts geht "
        "verloren: öffnen Sie den Link aus der E-Mail in einigen Minuten erneut.",
        "not_found_title": "Seite nicht gefunden",
        "not_found": "Unter dieser Adresse gibt es keine Seite.",
        "draft_title": "Entwurf {draft} von Auftrag {order}",
        "draft_held": "Wartet auf einen Operator: er wird erst gesendet, wenn jemand ihn aus der Temporal-Weboberfläche oder "
        "der Kommandozeile sendet. Diese Ansicht ist schreibgeschützt.",
        "draft_gone_title": "Dieser Entwurf wartet nicht mehr",
        "draft_gone": "Der Entwurf von Auftrag {order} wartet nicht mehr: er wurde gesendet oder verworfen.",
        "from": "Von",
        "to": "An",
        "cc": "Cc",
        "subject": "Betreff",
        "attachments": "Anhänge",
        "created": "Wartet seit",
        "reason": "Zurückgehalten, weil",
        "no_body": "Dieser Entwurf wird ohne HTML gehalten; er wird beim Senden erzeugt.",
        "images_note": "Eingebettete Bilder (cid:) zeigen nur E-Mail-Programme.",
    },
}
assert all(set(words) == set(TEXT["en"]) for words in TEXT.values()), "every language says everything"

# The verbs a decision is written with, where the page names the other decision.
DECISION_WORDS: Mapping[str, Mapping[str, str]] = {
    "en": {"approve": "approve", "reject": "reject"},
    "fr": {"approve": "approuver", "reject": "refuser"},
    "de": {"approve": "freigeben", "reject": "ablehnen"},
}


def language_of(requested: str) -> str:
    """The page's language: the link's, or its base (de-CH -> de), else English."""
    for candidate in (requested, requested.split("-")[0]):
        if candidate in TEXT:
            return candidate
    return "en"
