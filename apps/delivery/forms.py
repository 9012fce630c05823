from django import forms
from django.utils.translation import gettext_lazy as _

from apps.delivery.models import ReceiptMode


class ReceiptModeForm(forms.Form):
    mode = forms.ChoiceField(
        label=_("Quand un expéditeur demande un accusé de lecture"),
        choices=ReceiptMode.choices,
        widget=forms.RadioSelect,
        help_text=_("Les messages de patients reçoivent toujours un accusé de lecture."),
    )
