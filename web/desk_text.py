"""What the operators' desk and the draft editor say, in each language the print room's pages are written in."""

from __future__ import annotations

from collections.abc import Mapping

DESK_TEXT: Mapping[str, Mapping[str, str]] = {
    "en": {
        "not_the_orders": "{file} is not one of order {order}'s documents: only those can be attached here.",
        "not_answering": "These orders did not answer within a few seconds (is a worker running?): {orders}. Their "
        "emails are not listed here; open the list again in a minute.",
        "desk_title": "Emails waiting for you",
        "desk_intro": "Every email held for an operator, the longest waiting first (an order's emails together). This link works until {until}: bookmark it.",
        "desk_empty": "No email is waiting. Well done.",
        "col_age": "Waiting",
        "col_order": "Order",
        "col_customer": "Customer",
        "col_email": "Email",
        "col_to": "To",
        "col_subject": "Subject",
        "col_why": "Why held",
        "col_touched": "Last touched",
        "why_review": "operator review",
        "touched_tried": "{by} tried at {when}: {error}",
        "touched_reminded": "reminder {count} sent at {when}",
        "someone": "someone",
        "page_of": "Page {page} of {pages} · {count} emails",
        "page_of_one": "Page {page} of {pages} · 1 email",
        "previous": "Previous",
        "next": "Next",
        "open": "Open draft {draft} of order {order}",
        "editor_intro": "The email as the customer will see it. Change what needs changing, preview, then send. "
        "Nothing is sent until you press Send.",
        "by": "Your name (your browser offers it next time)",
        "note": "Note to the customer (the template places it; at most {max} characters)",
        "text": "Text of the email (a change here makes the HTML simple paragraphs inside the layout)",
        "cc": "Cc (addresses, separated by commas)",
        "to_field": "To (addresses, separated by commas)",
        "attach": "Attachments (the order's own documents)",
        "reason_field": "Reason for discarding (needed to discard)",
        "preview_button": "Preview",
        "send_button": "Send",
        "discard_button": "Discard",
        "preview_title": "Preview: the email exactly as it will be sent",
        "now_title": "The email as it is now",
        "text_part": "Text part",
        "sent_title": "Draft {draft} of order {order} is sent",
        "sent": "The email went out with Message-ID {message_id} to {to}.",
        "sent_cc": "Cc: {cc}.",
        "discarded_title": "Draft {draft} of order {order} is discarded",
        "discarded": "It will not be sent. The reason is kept with the order: {reason}",
        "not_sent_title": "The email was not sent",
        "not_sent": "The print room's system refused it, and nothing was sent: {reason}",
        "not_discarded_title": "The draft was not discarded",
        "settled_sent": "{draft} was sent at {when} by {by}. Nothing more was sent.",
        "settled_discarded": "{draft} was discarded at {when} by {by}.",
        "settled_gone": "{draft} of order {order} is no longer waiting: it was sent or discarded.",
        "reason_needed": "Say why the draft is discarded: the reason is kept with the order.",
        "too_long": "{field} has {length} characters; at most {max} are taken. Please shorten it.",
        "bad_address": "{field}: {value!r} is not an email address. Correct it and try again.",
        "edit_conflict": "The note would go where you changed the text: write the note into the text instead, or "
        "leave that part of the text as it was.",
        "cannot_build": "The email cannot be built, and nothing was sent: {reason}",
        "send_no_answer_title": "The email may have been sent",
        "send_no_answer": "The request reached the print room's system but its answer did not come back in time. Open "
        "the list again in a minute: a sent draft is no longer on it.",
        "desk_of_order_gone": "Order {order} has closed: its drafts no longer wait.",
    },
    "fr": {
        "not_the_orders": "{file} ne fait pas partie des documents de la commande {order} : seuls ceux-ci peuvent être joints ici.",
        "not_answering": "Ces commandes n'ont pas répondu en quelques secondes (un worker tourne-t-il ?) : {orders}. "
        "Leurs e-mails ne sont pas listés ici ; rouvrez la liste dans une minute.",
        "desk_title": "E-mails en attente",
        "desk_intro": "Chaque e-mail retenu pour un opérateur, celui qui attend depuis le plus longtemps d'abord (ceux d'une commande ensemble). Ce lien fonctionne "
        "jusqu'au {until} : ajoutez-le à vos favoris.",
        "desk_empty": "Aucun e-mail n'attend. Bravo.",
        "col_age": "En attente depuis",
        "col_order": "Commande",
        "col_customer": "Client",
        "col_email": "E-mail",
        "col_to": "À",
        "col_subject": "Objet",
        "col_why": "Retenu parce que",
        "col_touched": "Dernière action",
        "why_review": "relecture par un opérateur",
        "touched_tried": "{by} a essayé le {when} : {error}",
        "touched_reminded": "rappel {count} envoyé le {when}",
        "someone": "quelqu'un",
        "page_of": "Page {page} sur {pages} · {count} e-mails",
        "page_of_one": "Page {page} sur {pages} · 1 e-mail",
        "previous": "Précédente",
        "next": "Suivante",
        "open": "Ouvrir le brouillon {draft} de la commande {order}",
        "editor_intro": "L'e-mail tel que le client le verra. Modifiez ce qui doit l'être, prévisualisez, puis envoyez. "
        "Rien n'est envoyé avant que vous n'appuyiez sur Envoyer.",
        "by": "Votre nom (votre navigateur le proposera la prochaine fois)",
        "note": "Note pour le client (placée par le modèle ; {max} caractères au plus)",
        "text": "Texte de l'e-mail (une modification ici fait du HTML de simples paragraphes dans la mise en page)",
        "cc": "Cc (adresses séparées par des virgules)",
        "to_field": "À (adresses séparées par des virgules)",
        "attach": "Pièces jointes (les documents de la commande)",
        "reason_field": "Raison de l'abandon (nécessaire pour abandonner)",
        "preview_button": "Prévisualiser",
        "send_button": "Envoyer",
        "discard_button": "Abandonner",
        "preview_title": "Aperçu : l'e-mail exactement tel qu'il sera envoyé",
        "now_title": "L'e-mail tel qu'il est maintenant",
        "text_part": "Partie texte",
        "sent_title": "Le brouillon {draft} de la commande {order} est envoyé",
        "sent": "L'e-mail est parti avec le Message-ID {message_id} à {to}.",
        "sent_cc": "Cc : {cc}.",
        "discarded_title": "Le brouillon {draft} de la commande {order} est abandonné",
        "discarded": "Il ne sera pas envoyé. La raison est conservée avec la commande : {reason}",
        "not_sent_title": "L'e-mail n'a pas été envoyé",
        "not_sent": "Le système de la salle d'impression l'a refusé, et rien n'a été envoyé : {reason}",
        "not_discarded_title": "Le brouillon n'a pas été abandonné",
        "settled_sent": "{draft} a été envoyé le {when} par {by}. Rien de plus n'a été envoyé.",
        "settled_discarded": "{draft} a été abandonné le {when} par {by}.",
        "settled_gone": "{draft} de la commande {order} n'est plus en attente : il a été envoyé ou abandonné.",
        "reason_needed": "Indiquez pourquoi le brouillon est abandonné : la raison est conservée avec la commande.",
        "too_long": "{field} compte {length} caractères ; {max} au plus sont acceptés. Merci de raccourcir.",
        "bad_address": "{field} : {value!r} n'est pas une adresse e-mail. Corrigez-la et réessayez.",
        "edit_conflict": "La note irait là où vous avez modifié le texte : écrivez la note dans le texte, ou laissez "
        "cette partie du texte telle quelle.",
        "cannot_build": "L'e-mail ne peut pas être construit, et rien n'a été envoyé : {reason}",
        "send_no_answer_title": "L'e-mail a peut-être été envoyé",
        "send_no_answer": "La demande est parvenue au système de la salle d'impression mais sa réponse n'est pas revenue "
        "à temps. Rouvrez la liste dans une minute : un brouillon envoyé n'y figure plus.",
        "desk_of_order_gone": "La commande {order} est close : ses brouillons n'attendent plus.",
    },
    "de": {
        "not_the_orders": "{file} gehört nicht zu den Dokumenten von Auftrag {order}: nur diese können hier angehängt werden.",
        "not_answering": "Diese Aufträge haben nicht innerhalb weniger Sekunden geantwortet (läuft ein Worker?): "
        "{orders}. Ihre E-Mails sind hier nicht aufgeführt; öffnen Sie die Liste in einer Minute erneut.",
        "desk_title": "Wartende E-Mails",
        "desk_intro": "Jede für einen Operator zurückgehaltene E-Mail, die am längsten wartende zuerst (die eines Auftrags beisammen). Dieser Link gilt bis "
        "{until}: setzen Sie ein Lesezeichen.",
        "desk_empty": "Keine E-Mail wartet. Gut gemacht.",
        "col_age": "Wartet seit",
        "col_order": "Auftrag",
        "col_customer": "Kunde",
        "col_email": "E-Mail",
        "col_to": "An",
        "col_subject": "Betreff",
        "col_why": "Zurückgehalten, weil",
        "col_touched": "Zuletzt bearbeitet",
        "why_review": "Prüfung durch einen Operator",
        "touched_tried": "{by} versuchte es am {when}: {error}",
        "touched_reminded": "Erinnerung {count} gesendet am {when}",
        "someone": "jemand",
        "page_of": "Seite {page} von {pages} · {count} E-Mails",
        "page_of_one": "Seite {page} von {pages} · 1 E-Mail",
        "previous": "Zurück",
        "next": "Weiter",
        "open": "Entwurf {draft} von Auftrag {order} öffnen",
        "editor_intro": "Die E-Mail, wie der Kunde sie sehen wird. Ändern Sie, was nötig ist, sehen Sie sie sich an, "
        "dann senden Sie sie. Gesendet wird erst, wenn Sie auf Senden drücken.",
        "by": "Ihr Name (Ihr Browser schlägt ihn nächstes Mal vor)",
        "note": "Hinweis an den Kunden (die Vorlage setzt ihn ein; höchstens {max} Zeichen)",
        "text": "Text der E-Mail (eine Änderung hier macht das HTML zu einfachen Absätzen im Layout)",
        "cc": "Cc (Adressen, durch Kommas getrennt)",
        "to_field": "An (Adressen, durch Kommas getrennt)",
        "attach": "Anhänge (die Dokumente des Auftrags)",
        "reason_field": "Grund für das Verwerfen (zum Verwerfen nötig)",
        "preview_button": "Vorschau",
        "send_button": "Senden",
        "discard_button": "Verwerfen",
        "preview_title": "Vorschau: die E-Mail genau so, wie sie gesendet wird",
        "now_title": "Die E-Mail, wie sie jetzt ist",
        "text_part": "Textteil",
        "sent_title": "Entwurf {draft} von Auftrag {order} ist gesendet",
        "sent": "Die E-Mail ging mit der Message-ID {message_id} an {to}.",
        "sent_cc": "Cc: {cc}.",
        "discarded_title": "Entwurf {draft} von Auftrag {order} ist verworfen",
        "discarded": "Er wird nicht gesendet. Der Grund wird beim Auftrag festgehalten: {reason}",
        "not_sent_title": "Die E-Mail wurde nicht gesendet",
        "not_sent": "Das System der Druckerei hat sie abgelehnt, und nichts wurde gesendet: {reason}",
        "not_discarded_title": "Der Entwurf wurde nicht verworfen",
        "settled_sent": "{draft} wurde am {when} von {by} gesendet. Nichts weiter wurde gesendet.",
        "settled_discarded": "{draft} wurde am {when} von {by} verworfen.",
        "settled_gone": "{draft} von Auftrag {order} wartet nicht mehr: er wurde gesendet oder verworfen.",
        "reason_needed": "Geben Sie an, warum der Entwurf verworfen wird: der Grund wird beim Auftrag festgehalten.",
        "too_long": "{field} hat {length} Zeichen; höchstens {max} werden angenommen. Bitte kürzen Sie.",
        "bad_address": "{field}: {value!r} ist keine E-Mail-Adresse. Korrigieren Sie sie und versuchen Sie es erneut.",
        "edit_conflict": "Der Hinweis käme dorthin, wo Sie den Text geändert haben: schreiben Sie den Hinweis in den "
        "Text, oder lassen Sie diesen Teil des Textes, wie er war.",
        "cannot_build": "Die E-Mail kann nicht erstellt werden, und nichts wurde gesendet: {reason}",
        "send_no_answer_title": "Die E-Mail wurde möglicherweise gesendet",
        "send_no_answer": "Die Anfrage hat das System der Druckerei erreicht, aber die Antwort kam nicht rechtzeitig "
        "zurück. Öffnen Sie die Liste in einer Minute erneut: ein gesendeter Entwurf steht nicht mehr darauf.",
        "desk_of_order_gone": "Auftrag {order} ist abgeschlossen: seine Entwürfe warten nicht mehr.",
    },
}
assert all(set(words) == set(DESK_TEXT["en"]) for words in DESK_TEXT.values()), "every language says everything"

# The workflow's refusals of an edit (DraftRefused.words), as each page says them; the English text stays in logs.
REFUSALS: Mapping[str, Mapping[str, str]] = {
    "en": {
        "no_cc": "operators may not change the Cc of {draft} (drafts.operator_may_edit_cc is off): leave Cc as it "
        "was, or ask the administrator.",
        "no_to": "operators may not change the recipients of {draft} (drafts.operator_may_edit_to is off): leave To as "
        "it was, or ask the administrator.",
        "no_attach": "operators may not attach files to {draft} (drafts.operator_may_attach is off): send it without "
        "attachments, or ask the administrator.",
        "note_and_own": "the note goes where the template places it: with a text of your own, write the note into it.",
        "too_big": "the text of {draft} comes to {size} KB, over the {limit} KB allowed: shorten it.",
        "being_sent": "{draft} is being sent by another operator right now: wait a moment and open the list again.",
        "send_failed": "{draft} was not sent: {error}. It is still held: fix that (or wait for the mail server) and send "
        "it again.",
    },
    "fr": {
        "no_cc": "les opérateurs ne peuvent pas modifier le Cc de {draft} (drafts.operator_may_edit_cc est désactivé) : "
        "laissez le Cc tel quel, ou demandez à l'administrateur.",
        "no_to": "les opérateurs ne peuvent pas modifier les destinataires de {draft} (drafts.operator_may_edit_to est "
        "désactivé) : laissez le champ À tel quel, ou demandez à l'administrateur.",
        "no_attach": "les opérateurs ne peuvent pas joindre de fichiers à {draft} (drafts.operator_may_attach est "
        "désactivé) : envoyez-le sans pièces jointes, ou demandez à l'administrateur.",
        "note_and_own": "la note se place là où le modèle la prévoit : avec votre propre texte, écrivez la note dedans.",
        "too_big": "le texte de {draft} fait {size} Ko, au-delà des {limit} Ko permis : raccourcissez-le.",
        "being_sent": "{draft} est en cours d'envoi par un autre opérateur : attendez un instant et rouvrez la liste.",
        "send_failed": "{draft} n'a pas été envoyé : {error}. Il reste retenu : corrigez cela (ou attendez le serveur de "
        "messagerie) et envoyez-le à nouveau.",
    },
    "de": {
        "no_cc": "Operatoren dürfen das Cc von {draft} nicht ändern (drafts.operator_may_edit_cc ist aus): lassen Sie Cc, "
        "wie es war, oder fragen Sie den Administrator.",
        "no_to": "Operatoren dürfen die Empfänger von {draft} nicht ändern (drafts.operator_may_edit_to ist aus): lassen "
        "Sie An, wie es war, oder fragen Sie den Administrator.",
        "no_attach": "Operatoren dürfen {draft} keine Dateien anhängen (drafts.operator_may_attach ist aus): senden Sie "
        "ihn ohne Anhänge, oder fragen Sie den Administrator.",
        "note_and_own": "der Hinweis steht dort, wo die Vorlage ihn vorsieht: mit einem eigenen Text schreiben Sie den "
        "Hinweis hinein.",
        "too_big": "der Text von {draft} hat {size} KB, mehr als die erlaubten {limit} KB: kürzen Sie ihn.",
        "being_sent": "{draft} wird gerade von einem anderen Operator gesendet: warten Sie kurz und öffnen Sie die Liste "
        "erneut.",
        "send_failed": "{draft} wurde nicht gesendet: {error}. Er bleibt zurückgehalten: beheben Sie das (oder warten Sie "
        "auf den Mailserver) und senden Sie ihn erneut.",
    },
}
assert all(set(words) == set(REFUSALS["en"]) for words in REFUSALS.values()), "every language says every refusal"


def refusal_said(lang: str, refusal: Exception) -> str:
    """A workflow refusal in the page's language when it names its words (DraftRefused), else as it was given."""
    words, values = getattr(refusal, "words", ""), getattr(refusal, "values", {})
    try:
        return REFUSALS[lang][words].format(**values) if words in REFUSALS[lang] else str(refusal)
    except (KeyError, IndexError, ValueError):  # a worker of another version named other values: its own words
        return str(refusal)
