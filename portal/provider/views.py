from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from portal.accounts.decorators import staff_required
from portal.records.selectors import patient_list_for_hospital


@staff_required
def home_view(request: HttpRequest) -> HttpResponse:
    patients = Paginator(patient_list_for_hospital(hospital=request.hospital), 25)
    page = patients.get_page(request.GET.get("page"))
    return render(request, "provider/home.html", {"page": page})
