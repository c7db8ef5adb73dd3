from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from portal.accounts.decorators import patient_required


@patient_required
def home_view(request: HttpRequest) -> HttpResponse:
    return render(request, "patient/home.html", {"registrations": request.patient_registrations})
