"""Texts written in a task and shown later (apps.core.i18n): English where they are stored,
the reader's language where they are shown."""

from __future__ import annotations

from django.utils import translation
from django.utils.translation import gettext_noop

from apps.core.i18n import Deferred, explained, restore, translate


def test_a_deferred_text_is_its_english_and_keeps_its_message():
    text = Deferred(gettext_noop("zip refused: %(entries)s entries (limit %(limit)s)"), entries=7, limit=5)
    assert text == "zip refused: 7 entries (limit 5)" and isinstance(text, str)
    assert text.parts == (("zip refused: %(entries)s entries (limit %(limit)s)", {"entries": 7, "limit": 5}),)


def test_it_is_translated_when_shown_not_when_made():
    with translation.override("es"):
        made = Deferred(gettext_noop("damaged zip archive"))
        assert made == "damaged zip archive"            # stored in English, whoever made it
        assert translate(made) == "archivo zip dañado"  # shown in the reader's language
    with translation.override("en"):
        assert translate(made) == "damaged zip archive"


def test_columns_round_trip_through_json():
    text = Deferred(gettext_noop("missing %(keyword)s"), keyword="SOPInstanceUID")
    columns = explained(text)
    assert columns == {"reason": "missing SOPInstanceUID",
                       "reason_parts": [["missing %(keyword)s", {"keyword": "SOPInstanceUID"}]]}
    with translation.override("es"):
        assert translate(restore(columns["reason"], columns["reason_parts"])) == "falta SOPInstanceUID"


def test_joined_texts_stay_translatable_unless_one_is_plain():
    a = Deferred(gettext_noop("No (integer) pixel data to compress."))
    b = Deferred(gettext_noop("The original is already %(codec)s."), codec="RLE Lossless")
    joined = Deferred.join([a, b])
    assert joined == "No (integer) pixel data to compress. The original is already RLE Lossless."
    with translation.override("es"):
        assert translate(joined) == ("No hay datos de píxeles (enteros) que comprimir. "
                                     "El original ya está en RLE Lossless.")
    mixed = Deferred.join([a, "a library's own message"])
    assert type(mixed) is str and mixed == "No (integer) pixel data to compress. a library's own message"
    assert explained(mixed)["reason_parts"] == []


def test_plain_and_damaged_stored_texts_are_shown_as_stored():
    assert explained("a plain text")["reason_parts"] == []
    assert restore("as stored", []) == "as stored"
    assert restore("as stored", [["only one field"]]) == "as stored"      # not (msgid, args)
    broken = restore("as stored", [["missing %(keyword)s", {}]])         # arguments lost
    assert broken == "as stored"
    long = Deferred(gettext_noop("missing %(keyword)s"), keyword="x" * 400)
    assert len(explained(long)["reason"]) == 300 and explained(long)["reason_parts"][0][1]["keyword"] == "x" * 400


def test_joined_texts_never_read_as_one_sentence():
    # a report phrase with no full stop, then a sentence: QA read "…as a stored instance The study…"
    phrase = Deferred(gettext_noop("same SOPInstanceUID and same bytes as a stored instance"))
    sentence = Deferred(gettext_noop("The study it belongs to is not in the case chosen for the upload, and an "
                                     "upload does not move a study."))
    joined = Deferred.join([phrase, sentence])
    assert str(joined) == ("same SOPInstanceUID and same bytes as a stored instance. The study it belongs to is "
                           "not in the case chosen for the upload, and an upload does not move a study.")
    columns = explained(joined)
    with translation.override("es"):
        shown = translate(restore(columns["reason"], columns["reason_parts"]))
    assert shown.count(". ") == 1 and shown.endswith(".") and not shown.endswith("..")
    # a text that already ends a sentence, or the last one, gets no second stop
    assert str(Deferred.join([sentence, phrase])).count("..") == 0
    assert str(Deferred.join([sentence, phrase])).endswith("stored instance")
    assert Deferred.join(["plain phrase", "Another."]) == "plain phrase. Another."
